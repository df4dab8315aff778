# bsi - background security improvements.
#
#   make              build build/bsi and build/plugins/*.so
#   make check        install missing Debian packages, build, run every test suite
#   make asan         the test suites built with ASan+UBSan
#   make valgrind     the test suites, and every bsi they run, under valgrind
#   make demo         the whole path on a generated sample feed and device image
#   make bench        speed beside same-run baselines, one table (docs/bench.md)
#   make allocfail    the Nth allocation fails, for every N a small sync, plan
#                     and apply make (sampled; FULL=1 for every N); see
#                     tests/allocfail/sweep.sh
#   make install      PREFIX (default /usr/local) and DESTDIR are honoured
#   make uninstall    the same variables; keeps a configuration you changed
#   make fuzz         every libFuzzer target in tests/fuzz, FUZZ_SECONDS each
#   make lint         cppcheck and clang-tidy, zero findings
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
	libsqlite3-dev libjansson-dev libssl-dev check git openssh-client valgrind time

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

# The benchmark driver: not a Check suite, never run by `make check`.
$(BUILD)/tests/bench: tests/bench/bench.c tests/sigtool.c $(HOST_OBJ) $(BUILD)/host/failpoint.o $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests $(LDFLAGS) -o $@ $< tests/sigtool.c $(HOST_OBJ) \
		$(BUILD)/host/failpoint.o $(LIBS)

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

bench: deps
	@$(MAKE) --no-print-directory all $(BUILD)/tests/bench
	@$(BUILD)/tests/bench $(abspath $(BUILD))

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

# --- install -------------------------------------------------------------
# What `make install` puts where (docs/decisions.md, "Installation"):
#   BINDIR/bsi, PLUGINDIR/*.so, MANDIR/man1/bsi.1, MANDIR/man5/bsi.conf.5 and
#   bsi-recipe.5, SYSCONFDIR/bsi/bsi.conf (only if absent), the systemd units
#   in SYSTEMDUNITDIR, the bash completion in BASHCOMPDIR.
# Templates in dist/ are filled in with sed into $(BUILD)/dist/.
# SYSTEMDUNITDIR: systemd's own directory (pkg-config) when PREFIX is
# systemd's prefix, else PREFIX/lib/systemd/system, which systemd also reads
# for /usr/local, and which a DESTDIR staging install keeps under PREFIX.
STATEDIR ?= /var/lib/bsi
DATADIR ?= $(PREFIX)/share
SYSTEMD_PREFIX := $(shell $(PKG_CONFIG) --variable=prefix systemd 2>/dev/null)
SYSTEMDUNITDIR ?= $(if $(filter $(PREFIX),$(SYSTEMD_PREFIX)),$(shell \
	$(PKG_CONFIG) --variable=systemdsystemunitdir systemd),$(PREFIX)/lib/systemd/system)
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
MANPAGES := docs/bsi.1 docs/bsi.conf.5 docs/bsi-recipe.5
DIST := $(BUILD)/dist/bsi.conf $(BUILD)/dist/bsi-agent.service $(BUILD)/dist/bsi-agent.timer
INSTALL ?= install

# The binary has PLUGINDIR and SYSCONFDIR compiled in: rebuild the objects
# that use them when they change, so `make install PREFIX=/usr` after a
# plain `make` does not install a binary that looks in /usr/local.
$(BUILD)/paths.stamp: FORCE
	@mkdir -p $(@D)
	@echo '$(PLUGINDIR) $(SYSCONFDIR)' | cmp -s - $@ || echo '$(PLUGINDIR) $(SYSCONFDIR)' > $@
$(BUILD)/host/main.o $(BUILD)/host/plugin.o: $(BUILD)/paths.stamp

$(BUILD)/dist/%: dist/%.in $(BUILD)/paths.stamp
	@mkdir -p $(@D)
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@PLUGINDIR@|$(PLUGINDIR)|g' \
		-e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@STATEDIR@|$(STATEDIR)|g' $< > $@

install: all $(DIST) $(MANPAGES)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(SYSCONFDIR)/bsi $(DESTDIR)$(SYSTEMDUNITDIR) \
		$(DESTDIR)$(BASHCOMPDIR)
	$(INSTALL) -m 0755 $(BUILD)/bsi $(DESTDIR)$(BINDIR)/bsi
	for p in $(PLUGINS); do $(INSTALL) -m 0644 $$p $(DESTDIR)$(PLUGINDIR)/; done
	$(INSTALL) -m 0644 docs/bsi.1 $(DESTDIR)$(MANDIR)/man1/bsi.1
	$(INSTALL) -m 0644 docs/bsi.conf.5 docs/bsi-recipe.5 $(DESTDIR)$(MANDIR)/man5/
	$(INSTALL) -m 0644 $(BUILD)/dist/bsi-agent.service $(BUILD)/dist/bsi-agent.timer \
		$(DESTDIR)$(SYSTEMDUNITDIR)/
	$(INSTALL) -m 0644 dist/bsi.bash-completion $(DESTDIR)$(BASHCOMPDIR)/bsi
	@# A conffile: never overwrite the admin's; offer the new default beside it.
	@conf=$(DESTDIR)$(SYSCONFDIR)/bsi/bsi.conf; \
	if [ ! -e "$$conf" ]; then \
		echo "$(INSTALL) -m 0644 $(BUILD)/dist/bsi.conf $$conf"; \
		$(INSTALL) -m 0644 $(BUILD)/dist/bsi.conf "$$conf"; \
	elif ! cmp -s $(BUILD)/dist/bsi.conf "$$conf"; then \
		$(INSTALL) -m 0644 $(BUILD)/dist/bsi.conf "$$conf.dist"; \
		echo "bsi: kept $$conf (changed by you); the new default is $$conf.dist"; \
	fi

# Removes every file install put there.  The configuration is removed only
# if it is byte for byte the default this tree installs; a changed one is
# the admin's and is kept (docs/decisions.md).
uninstall: $(BUILD)/dist/bsi.conf
	rm -f $(DESTDIR)$(BINDIR)/bsi
	for p in $(PLUGINS); do rm -f $(DESTDIR)$(PLUGINDIR)/$$(basename $$p); done
	rmdir $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(LIBDIR)/bsi 2>/dev/null || true
	rm -f $(DESTDIR)$(MANDIR)/man1/bsi.1 $(DESTDIR)$(MANDIR)/man5/bsi.conf.5 \
		$(DESTDIR)$(MANDIR)/man5/bsi-recipe.5
	rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/bsi-agent.service $(DESTDIR)$(SYSTEMDUNITDIR)/bsi-agent.timer
	rm -f $(DESTDIR)$(BASHCOMPDIR)/bsi
	rm -f $(DESTDIR)$(SYSCONFDIR)/bsi/bsi.conf.dist
	@conf=$(DESTDIR)$(SYSCONFDIR)/bsi/bsi.conf; \
	if cmp -s $(BUILD)/dist/bsi.conf "$$conf"; then echo "rm -f $$conf"; rm -f "$$conf"; \
	elif [ -e "$$conf" ]; then echo "bsi: kept $$conf (changed by you)"; fi
	rmdir $(DESTDIR)$(SYSCONFDIR)/bsi 2>/dev/null || true

FORCE:

# Fuzzing (clang, libFuzzer, ASan+UBSan): tests/fuzz/fuzz_NAME.c becomes
# build-fuzz/fuzz/fuzz_NAME; each runs FUZZ_SECONDS from its seed corpus
# tests/fuzz/corpus/NAME (which also holds the regression inputs) and
# fails on any crash, leak or timeout.  New inputs and artifacts go to
# tests/fuzz/findings/NAME (ignored by git).
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(HOST_OBJ) $(BUILD)/host/failpoint.o $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< $(HOST_OBJ) \
		$(BUILD)/host/failpoint.o $(LIBS)

# Static analysis: cppcheck (tests/lint/ holds its suppressions, each
# justified, and a library file for jansson's macros) and clang-tidy
# (.clang-tidy, tests/.clang-tidy), over every C file; any finding fails.
LINT_SRC := $(wildcard host/*.c plugins/*.c tests/*.c tests/fuzz/*.c)
CPPCHECK ?= cppcheck
CLANG_TIDY ?= clang-tidy

lint:
	@sh tests/deps.sh $(DEB_PKGS) cppcheck clang-tidy
	$(CPPCHECK) --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
		--inline-suppr --library=posix --library=tests/lint/jansson.cfg \
		--suppressions-list=tests/lint/cppcheck-suppressions.txt \
		--template='{file}:{line}: {severity}: {message} [{id}]' \
		-D_GNU_SOURCE -Ihost -Iplugins -Itests -j2 host plugins tests
	@$(MAKE) --no-print-directory BUILD=build-lint $(LINT_SRC:%.c=build-lint/tidy/%.ok)

# One clang-tidy run per file (make -j2 runs two at once); the stamp
# makes a re-run check only what changed.
$(BUILD)/tidy/%.ok: %.c $(HEADERS) .clang-tidy tests/.clang-tidy
	@mkdir -p $(@D)
	@$(CLANG_TIDY) --quiet $< -- $(filter-out -Werror,$(ALL_CFLAGS)) -Itests 2>&1 | \
		grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated' >$@.log; \
		if [ -s $@.log ]; then cat $@.log; exit 1; fi; mv $@.log $@

fuzz-build:
	@sh tests/deps.sh $(DEB_PKGS) clang libclang-rt-dev
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=$(FUZZ_CC) CFLAGS="$(FUZZ_CFLAGS)" \
		$(FUZZ_TARGETS:%=build-fuzz/fuzz/fuzz_%)

fuzz: fuzz-build
	@sh tests/fuzz/run.sh build-fuzz/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf build build-asan build-valgrind build-allocfail build-fuzz build-lint

.PHONY: all deps check run-tests asan valgrind bench allocfail demo install uninstall clean FORCE \
	fuzz fuzz-build lint
