/* cli_commands.h - commands implemented outside main.c (one file per area). */
#ifndef TG_CLI_COMMANDS_H
#define TG_CLI_COMMANDS_H

struct cli_args;

int cmd_user(struct cli_args *a);
int cmd_org(struct cli_args *a);
int cmd_keys(struct cli_args *a);    /* cli_keys.c */
int cmd_credits(struct cli_args *a); /* cli_ledger.c */
int cmd_audit(struct cli_args *a);   /* cli_ledger.c */
int cmd_backup(struct cli_args *a);  /* cli_ledger.c */
int cmd_models(struct cli_args *a);  /* cli_catalog.c */

#endif
