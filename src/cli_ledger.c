/* cli_ledger.c - placeholder until this area lands; replaced by its implementation. */
#include <stdio.h>

#include "cli.h"
#include "cli_commands.h"

int cmd_credits(struct cli_args *a)
{
	(void)a;
	fprintf(stderr, "tollgate: this command is not available in this build\n");
	return 2;
}

int cmd_audit(struct cli_args *a)
{
	(void)a;
	fprintf(stderr, "tollgate: this command is not available in this build\n");
	return 2;
}

int cmd_backup(struct cli_args *a)
{
	(void)a;
	fprintf(stderr, "tollgate: this command is not available in this build\n");
	return 2;
}
