/* app.h - process-wide state shared by the CLI, the dashboard and the gateway. */
#ifndef TG_APP_H
#define TG_APP_H

#include "core/config.h"

/* Open the data directory for use: create it (0700), configure the database
 * and apply migrations. err gets a message on failure. */
int app_open_store(const tg_config_t *cfg, char *err, size_t errlen);
/* Take the data directory's lock file; TG_ECONFLICT if another server holds it. */
int app_lock(const tg_config_t *cfg, char *err, size_t errlen);
void app_unlock(void);
/* Load (or create on first start) DATA/secret.key; prints the error. */
struct tg_secrets;
int app_load_secrets(const tg_config_t *cfg, struct tg_secrets *s);
/* Hand the secrets to the modules that need them (API key pepper, provider
 * key sealing). Called by serve and by CLI commands that touch those areas. */
void app_init_modules(const struct tg_secrets *s);

#endif
