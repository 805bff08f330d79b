/* ledger_kind.h - the kinds of ledger entry, on their own so the ledger's
 * private header can name them without including ledger.h (which includes
 * this; use ledger.h, not this, outside src/ledger/).
 */
#ifndef TG_LEDGER_KIND_H
#define TG_LEDGER_KIND_H

enum ledger_kind { LEDGER_GRANT = 0, LEDGER_ADJUST, LEDGER_REDEEM, LEDGER_USAGE };

#endif
