/*
 * commands.h - one handler per bsi command; main.c dispatches to them.
 */
#ifndef BSI_COMMANDS_H
#define BSI_COMMANDS_H

#include "cli.h"

int bsi_cmd_recipe_check(bsi_cli *cli);
int bsi_cmd_plan(bsi_cli *cli);

#endif
