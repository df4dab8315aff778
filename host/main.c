/* main.c - the bsi command line; see cli.c for the commands. */
#include "error.h"

#include <stdio.h>

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "bsi: not yet\n");
	return bsi_error_exit_status(BSI_EUSAGE);
}
