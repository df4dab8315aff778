# bsi - background security improvements.
#
#   make              build build/bsi and build/plugins/*.so
#   make check        install missing Debian packages, build, run every test suite
#   make asan         the test suites built with ASan+UBSan
#   make valgrind     the test suites, and every bsi they run, under valgrind
#   make demo         the whole path on a generated sample feed and device image
#   make allocfail    the Nth allocation fails, for every N a small sync, plan
#                     and apply make (sampled; FULL=1 for every N); see
#                     tests/allocfail/sweep.sh
#   make install      PREFIX (default /usr/local) and DESTDIR are honoured
#
# Sources are found by wildcard: host/*.c is the program (host/main.c holds
# main), plugins/NAME.c becomes plugins/NAME.so, tests/check_NAME.c is one
# Check suite.  BUILD selects the output directory, so sanitizer builds live
# beside the normal one.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
PLUGINDIR ?= $(LIBDIR)/bsi/plugins
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
DESTDIR ?=

BUILD ?= build
CC ?= cc
PKG_CONFIG ?= pkg-config
PKGS := lua5.4 libgit2 libsodium sqlite3 jansson libcrypto
DEB_PKGS := build-essential pkg-config liblua5.4-dev libgit2-dev libsodium-dev \
	libsqlite3-dev libjansson-dev libssl-dev check git openssh-client valgrind

CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wvla -Wno-unused-parameter
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) -Ihost -Iplugins $(PKG_CFLAGS) \
	-DBSI_PLUGINDIR='"$(PLUGINDIR)"' -DBSI_SYSCONFDIR='"$(SYSCONFDIR)"' $(CFLAGS)
LIBS := $(PKG_LIBS) -ldl -lm

HOST_SRC := $(filter-out host/main.c host/failpoint.c,$(wildcard host/*.c))
HOST_OBJ := $(HOST_SRC:host/%.c=$(BUILD)/host/%.o)
PLUGINS := $(patsubst plugins/%.c,$(BUILD)/plugins/%.so,$(wildcard plugins/*.c))
TESTS := $(patsubst tests/check_%.c,$(BUILD)/tests/check_%,$(wildcard tests/check_*.c))
TEST_HELPERS := $(filter-out tests/check_%.c,$(wildcard tests/*.c))
HEADERS := $(wildcard host/*.h plugins/*.h tests/*.h)

# Quiet by default; `make V=1` shows every command.
ifeq ($(V),1)
Q :=
say := @true
else
Q := @
say := @printf '  %-7s %s\n'
endif

all: $(BUILD)/bsi $(BUILD)/bsi-failpoint $(PLUGINS)

$(BUILD)/host/%.o: host/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(say) CC $<
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The production binary has failpoints compiled out; the test binary
# build/bsi-failpoint honours BSI_FAILPOINT (see host/failpoint.h).
$(BUILD)/host/failpoint-on.o: host/failpoint.c $(HEADERS)
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(ALL_CFLAGS) -DBSI_FAILPOINTS -c -o $@ $<

$(BUILD)/bsi: $(BUILD)/host/main.o $(HOST_OBJ) $(BUILD)/host/failpoint.o
	$(say) LINK $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/bsi-failpoint: $(BUILD)/host/main.o $(HOST_OBJ) $(BUILD)/host/failpoint-on.o
	$(say) LINK $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

# The allocation-failure sweep: allocfail.so is an LD_PRELOAD shim for the
# plain build; bsi-allocfail has the same shim linked in, for a sanitizer
# build where ASan must come first and a preloaded shim cannot.
$(BUILD)/allocfail.so: tests/allocfail/allocfail.c
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) -std=c11 -Wall -Wextra -Werror -O2 -g -fPIC -shared -o $@ $< -ldl -lpthread

$(BUILD)/host/allocfail.o: tests/allocfail/allocfail.c
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) -std=c11 -Wall -Wextra -Werror -O1 -g -fno-sanitize=all -c -o $@ $<

$(BUILD)/bsi-allocfail: $(BUILD)/host/main.o $(HOST_OBJ) $(BUILD)/host/failpoint.o $(BUILD)/host/allocfail.o
	$(say) LINK $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS) -lpthread

$(BUILD)/plugins/%.so: plugins/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(ALL_CFLAGS) -fPIC -shared $(LDFLAGS) -o $@ $<

$(BUILD)/tests/check_%: tests/check_%.c $(TEST_HELPERS) $(HOST_OBJ) $(BUILD)/host/failpoint.o $(HEADERS)
	@mkdir -p $(@D)
	$(say) LINK $@
	$(Q)$(CC) $(ALL_CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(TEST_HELPERS) $(HOST_OBJ) \
		$(BUILD)/host/failpoint.o $(LIBS) $$($(PKG_CONFIG) --libs check)

# Targets that need the Debian packages install the missing ones first, then
# re-enter make so pkg-config sees them.
deps:
	@sh tests/deps.sh $(DEB_PKGS)

check: deps
	@$(MAKE) --no-print-directory run-tests

run-tests: all $(TESTS)
	@BSI_BUILD=$(abspath $(BUILD)) sh tests/run-tests.sh $(TESTS)

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan \
		CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
		LDFLAGS="-fsanitize=address,undefined" run-tests

valgrind: deps
	@$(MAKE) --no-print-directory BUILD=build-valgrind CFLAGS="-O1 -g" all $(TESTS:$(BUILD)/%=build-valgrind/%)
	@BSI_VALGRIND=1 BSI_BUILD=$(abspath build-valgrind) sh tests/run-tests.sh \
		$(TESTS:$(BUILD)/%=build-valgrind/%)

# Sampled by default (N = 1..ALLOCFAIL_FIRST, then every ALLOCFAIL_STRIDE-th);
# FULL=1 runs every N, and the plain build too.  docs/allocfail.md.
ALLOCFAIL_SAN := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ALLOCFAIL_FIRST ?= 100
ALLOCFAIL_STRIDE ?= 53
allocfail: deps
	@$(MAKE) --no-print-directory BUILD=build-allocfail CFLAGS="$(ALLOCFAIL_SAN)" \
		LDFLAGS="-fsanitize=address,undefined" build-allocfail/bsi-allocfail \
		build-allocfail/plugins/record.so
	@$(MAKE) --no-print-directory all $(BUILD)/allocfail.so
	@ALLOCFAIL_FIRST=$(ALLOCFAIL_FIRST) ALLOCFAIL_STRIDE=$(ALLOCFAIL_STRIDE) \
		ALLOCFAIL_LOG=$(abspath build-allocfail)/allocfail.log \
		nice -n 10 sh tests/allocfail/sweep.sh $(abspath build-allocfail) $(abspath $(BUILD)) \
		$(if $(FULL),--full)

demo: deps
	@$(MAKE) --no-print-directory all
	@sh tests/demo.sh $(abspath $(BUILD))

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PLUGINDIR)
	install -m 0755 $(BUILD)/bsi $(DESTDIR)$(BINDIR)/bsi
	for p in $(PLUGINS); do install -m 0644 $$p $(DESTDIR)$(PLUGINDIR)/; done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/bsi
	for p in $(PLUGINS); do rm -f $(DESTDIR)$(PLUGINDIR)/$$(basename $$p); done
	-rmdir $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(LIBDIR)/bsi 2>/dev/null

clean:
	rm -rf build build-asan build-valgrind build-allocfail

.PHONY: all deps check run-tests asan valgrind allocfail demo install uninstall clean
