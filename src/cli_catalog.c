/* cli_catalog.c - placeholder until this area lands; replaced by its implementation. */
#include <stdio.h>

#include "cli.h"
#include "cli_commands.h"

int cmd_models(struct cli_args *a)
{
	(void)a;
	fprintf(stderr, "tollgate: this command is not available in this build\n");
	return 2;
}
