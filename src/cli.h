/* cli.h - shared helpers for the command-line commands. */
#ifndef TG_CLI_H
#define TG_CLI_H

#include "core/config.h"

/* Parsed arguments for one command: config flags are applied to cfg, the rest
 * are kept in order in argv (not including the command name). */
struct cli_args {
	tg_config_t cfg;
	int argc;
	char **argv;
};

/* Load defaults < file < env < flags from argv (which starts after the
 * command name). Prints an error and returns non-zero on bad settings. */
int cli_parse(int argc, char **argv, struct cli_args *out);
void cli_args_free(struct cli_args *a);
/* The value of `--name VALUE` / `--name=VALUE` in a, or NULL. */
const char *cli_opt(const struct cli_args *a, const char *name);
/* 1 when the bare flag `--name` is present. */
int cli_flag(const struct cli_args *a, const char *name);
/* The i-th argument that is not an option or an option's value, or NULL.
 * `takes_value` lists the options that consume a value, NULL-terminated. */
const char *cli_positional(const struct cli_args *a, int i, const char *const *takes_value);
/* Split "SUB args..." off a: *rest shares a's storage (do not free it) and
 * holds the arguments after SUB. Returns 0 when there is no subcommand. */
int cli_subcommand(const struct cli_args *a, struct cli_args *rest, const char **sub);
/* Read one line from stdin without echo when it is a terminal. Caller frees. */
char *cli_read_secret(const char *prompt);
/* Open the store (data dir + migrations); prints the error. */
int cli_open_store(const struct cli_args *a);

#endif
