/* journal.h - the SQLite store's call journal: how a finished call's debit and
 * request row reach the database without a SQLite commit on the call's path.
 *
 * A finished call becomes one record. journal_submit() appends the record to
 * a journal file in the data directory (one write(2): from then on it
 * survives a crash of the process) and queues it; the call then answers.
 * One writer thread takes everything queued, writes the ledger entries and
 * request rows of the whole batch in ONE transaction (group commit) together
 * with the journal's applied_seq, and only then releases the calls' holds
 * and truncates the file the batch came from. Until its entry commits, a
 * call's hold counts its cost (ledger_hold_settling), so no other call can
 * spend the money on the way.
 *
 * Two files take turns: appends go to the active one; the writer switches
 * files when it takes a batch, so a file holds exactly one batch and can be
 * emptied once that batch commits. At start, both files are replayed: every
 * intact record with a seq above the database's applied_seq is applied, in
 * seq order, in one transaction. A torn tail (a crash or power loss in the
 * middle of a write) is detected by each record's checksum and ignored: no
 * answer was sent for it.
 *
 * With synchronous=full the record is also written, but the call waits for
 * the batch's commit (fsynced by SQLite) before it answers: group commit with
 * durability across power loss.
 *
 * Without journal_start() (the CLI, unit tests) a submitted record is applied
 * at once, in its own transaction.
 */
#ifndef TG_JOURNAL_H
#define TG_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "billing/billing.h"
#include "core/buf.h"

/* Replay what the journal files hold, then start the writer thread.
 * wait_for_commit: callers of journal_submit wait for their batch's commit. */
int journal_start(const char *data_dir, int wait_for_commit, char *err, size_t errlen);
/* Apply everything queued, stop the writer, close the files. */
void journal_stop(void);

/* Hand a finished call over (rec from malloc; the journal frees it and
 * releases rec->hold). Do not touch rec afterwards. TG_OK when the record is
 * in the journal file (or committed); on TG_EIO the record could not be made
 * durable and was not applied (its hold is released). */
int journal_submit(struct call_record *rec);

/* Wait (up to a few seconds) until every record submitted so far is
 * committed: for readers that must see a caller's own calls (GET /v1/key). */
void journal_flush(void);

/* Record encoding, for the unit tests and the replay: appends one framed
 * record to out; journal_decode reads one from p (TG_OK and *used, or
 * TG_EINVAL for a torn or corrupt record). */
int journal_encode(const struct call_record *rec, buf_t *out);
int journal_decode(const unsigned char *p, size_t n, struct call_record *rec, size_t *used);

/* Calls answered but not yet in the database: intact records in data_dir's
 * journal files above applied_seq, and the sum of their debits (for `tollgate
 * audit`; a running server or the next start applies them). */
int journal_pending(const char *data_dir, uint64_t *calls, int64_t *debits);

/* Records submitted and batches committed since start (for /metrics). */
void journal_stats(uint64_t *records, uint64_t *batches, uint64_t *queued);

#endif
