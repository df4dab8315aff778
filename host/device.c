/* device.c - open the device side in the right order; see device.h. */
#include "device.h"

#include "error.h"

#include <stdlib.h>

int bsi_device_open(bsi_device **out, const bsi_device_options *opt)
{
	char dir[4096];
	bsi_device *dev = calloc(1, sizeof(*dev));
	int ret;

	*out = NULL;
	if (!dev)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	if (opt->mutating &&
	    (ret = bsi_lock_acquire(&dev->lock, opt->state_dir, opt->wait)) != 0)
		goto done;
	if ((ret = bsi_state_open(&dev->state, opt->state_dir)) != 0 ||
	    (ret = bsi_root_open(&dev->root, opt->root)) != 0)
		goto done;
	if (!opt->mutating) {
		/* A reader takes the lock only when there is something to
		 * recover, and never waits for it, so `bsi status` in a loop
		 * cannot make an unattended apply fail as busy. */
		bsi_state_txn **list = NULL;
		size_t n = 0;

		if ((ret = bsi_state_txn_unfinished(dev->state, &list, &n)) != 0)
			goto done;
		bsi_state_txn_list_free(list, n);
		if (n > 0 && bsi_lock_acquire(&dev->lock, opt->state_dir, -1) != 0)
			dev->lock = NULL; /* busy: its holder recovers */
	}
	if (opt->mutating && opt->service_manager) {
		const char *pdir = opt->plugin_dir;

		if (!pdir) {
			if ((ret = bsi_plugin_default_dir(dir, sizeof(dir))) != 0)
				goto done;
			pdir = dir;
		}
		if ((ret = bsi_plugin_load(&dev->plugin, pdir, opt->service_manager,
					   opt->state_dir)) != 0)
			goto done;
	}
	dev->ctx.state = dev->state;
	dev->ctx.root = dev->root;
	dev->ctx.plugin = dev->plugin;
	if (dev->lock && (ret = bsi_txn_recover(&dev->ctx, &dev->recovered)) != 0)
		goto done;
	if (!opt->mutating) {
		bsi_lock_free(dev->lock);
		dev->lock = NULL;
	}
	*out = dev;
	dev = NULL;
done:
	bsi_device_free(dev);
	return ret;
}

void bsi_device_free(bsi_device *dev)
{
	if (!dev)
		return;
	bsi_plugin_free(dev->plugin);
	bsi_root_free(dev->root);
	bsi_state_free(dev->state);
	bsi_lock_free(dev->lock);
	free(dev);
}
