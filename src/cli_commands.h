/* cli_commands.h - commands implemented outside main.c (one file per area). */
#ifndef TG_CLI_COMMANDS_H
#define TG_CLI_COMMANDS_H

struct cli_args;

int cmd_user(struct cli_args *a);
int cmd_org(struct cli_args *a);

#endif
