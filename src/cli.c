/* cli.c - argument helpers shared by the commands; see cli.h. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "app.h"
#include "core/common.h"
#include "core/log.h"

int cli_parse(int argc, char **argv, struct cli_args *out)
{
	char err[512];
	const char *file = getenv("TOLLGATE_CONFIG");
	int i, rc;

	memset(out, 0, sizeof(*out));
	config_defaults(&out->cfg);
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			file = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			file = argv[i] + 9;
	}
	if (file && (rc = config_load_file(&out->cfg, file, err, sizeof(err)))) {
		fprintf(stderr, "tollgate: %s\n", err);
		return rc;
	}
	if ((rc = config_load_env(&out->cfg, err, sizeof(err)))) {
		fprintf(stderr, "tollgate: %s\n", err);
		return rc;
	}
	out->argv = calloc((size_t)argc + 1, sizeof(char *));
	if (!out->argv)
		return TG_ENOMEM;
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0) {
			i++;
			continue;
		}
		if (strncmp(argv[i], "--config=", 9) == 0)
			continue;
		rc = config_apply_flag(&out->cfg, argc, argv, &i, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "tollgate: %s\n", err);
			goto fail;
		}
		if (rc == 0)
			out->argv[out->argc++] = argv[i];
	}
	if ((rc = config_validate(&out->cfg, err, sizeof(err)))) {
		fprintf(stderr, "tollgate: %s\n", err);
		goto fail;
	}
	log_set_level((enum log_level)log_level_parse(out->cfg.log_level));
	return TG_OK;
fail:
	cli_args_free(out);
	return rc;
}

void cli_args_free(struct cli_args *a)
{
	free(a->argv);
	a->argv = NULL;
}

const char *cli_opt(const struct cli_args *a, const char *name)
{
	size_t n = strlen(name);
	int i;

	for (i = 0; i < a->argc; i++) {
		const char *s = a->argv[i];

		if (strncmp(s, "--", 2) != 0 || strncmp(s + 2, name, n) != 0)
			continue;
		if (s[2 + n] == '=')
			return s + 3 + n;
		if (s[2 + n] == '\0' && i + 1 < a->argc)
			return a->argv[i + 1];
	}
	return NULL;
}

int cli_flag(const struct cli_args *a, const char *name)
{
	int i;

	for (i = 0; i < a->argc; i++)
		if (strncmp(a->argv[i], "--", 2) == 0 && strcmp(a->argv[i] + 2, name) == 0)
			return 1;
	return 0;
}

static int takes(const char *arg, const char *const *takes_value)
{
	size_t k;

	if (!takes_value || strchr(arg, '='))
		return 0;
	for (k = 0; takes_value[k]; k++)
		if (strcmp(arg + 2, takes_value[k]) == 0)
			return 1;
	return 0;
}

const char *cli_positional(const struct cli_args *a, int want, const char *const *takes_value)
{
	int i, seen = 0;

	for (i = 0; i < a->argc; i++) {
		const char *s = a->argv[i];

		if (strncmp(s, "--", 2) == 0) {
			if (takes(s, takes_value))
				i++;
			continue;
		}
		if (seen++ == want)
			return s;
	}
	return NULL;
}

int cli_subcommand(const struct cli_args *a, struct cli_args *rest, const char **sub)
{
	*rest = *a;
	if (a->argc < 1 || strncmp(a->argv[0], "--", 2) == 0) {
		*sub = "";
		return 0;
	}
	*sub = a->argv[0];
	rest->argv = a->argv + 1;
	rest->argc = a->argc - 1;
	return 1;
}

char *cli_read_secret(const char *prompt)
{
	struct termios old, quiet;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int tty = isatty(STDIN_FILENO);

	if (tty) {
		fprintf(stderr, "%s", prompt);
		fflush(stderr);
		tcgetattr(STDIN_FILENO, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	n = getline(&line, &cap, stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	if (n < 0) {
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

int cli_open_store(const struct cli_args *a)
{
	char err[512];
	int rc = app_open_store(&a->cfg, err, sizeof(err));

	if (rc)
		fprintf(stderr, "tollgate: %s\n", err);
	return rc;
}
