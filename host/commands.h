/*
 * commands.h - one handler per bsi command; main.c dispatches to them.
 */
#ifndef BSI_COMMANDS_H
#define BSI_COMMANDS_H

#include "cli.h"

/* cmd_recipe.c: the team's preview */
int bsi_cmd_recipe_check(bsi_cli *cli);
int bsi_cmd_digest(bsi_cli *cli);
int bsi_cmd_payload_add(bsi_cli *cli);
int bsi_cmd_plan(bsi_cli *cli);
/* cmd_device.c */
int bsi_cmd_enroll(bsi_cli *cli);
int bsi_cmd_sync(bsi_cli *cli);
int bsi_cmd_feed_verify(bsi_cli *cli);
int bsi_cmd_device_plan(bsi_cli *cli);
int bsi_cmd_apply(bsi_cli *cli);
int bsi_cmd_rollback(bsi_cli *cli);
int bsi_cmd_hold(bsi_cli *cli);
int bsi_cmd_release(bsi_cli *cli);
/* cmd_agent.c */
int bsi_cmd_agent(bsi_cli *cli);
/* cmd_status.c */
int bsi_cmd_status(bsi_cli *cli);
int bsi_cmd_show(bsi_cli *cli);
int bsi_cmd_history(bsi_cli *cli);
int bsi_cmd_verify(bsi_cli *cli);

#endif
