/*-------------------------------------------------------------------------
 *
 * selfkill.c
 *		Ending a session from inside it, at the exact point its protocol
 *		allows: after the statement that killed it, or after the transaction
 *		that a disconnect let it finish.
 *
 * Two ends, different on purpose:
 *
 * The self-kill (kill_session() naming the caller's own session): the
 * statement that kills its own session completes and its whole result
 * (every row and its completion message) reaches the client; right after
 * that the session ends with FATAL 57P01, before it would ever report
 * itself ready for another query.  The caller asked to end its own
 * session, and nothing of its may run after: no connection pooler can hand
 * the session to another client, and nothing else the client sent (a
 * statement, a bound portal, a fastpath call, COPY data, a Sync) runs or
 * commits.  What PostgreSQL had committed when the statement completed
 * stays committed (a query string's implicit transaction commits just
 * before its last statement's completion is sent); everything else rolls
 * back.
 *
 * The end after the transaction (disconnect_session(..., post_transaction
 * => true), see disconnect.c): the transaction's end reaches the client
 * whole and successful -- its CommandComplete *and* its ReadyForQuery --
 * so that every driver reports the COMMIT (or ROLLBACK, or autocommit
 * statement) as it happened.  The session then ends as an idle session is
 * ended, with FATAL 57P01 in the same write as that ReadyForQuery, and the
 * application's next call fails, as Oracle's does.  Nothing that starts
 * after the transaction runs: where the statement that ended it is followed
 * by more statements in the same query string, the ReadyForQuery is sent
 * right after its completion, and the rest never runs.
 *
 * Every protocol message leaves the backend through pq_putmessage(), that
 * is PqCommMethods->putmessage, so the end of a statement or a transaction
 * is seen exactly where it is sent.  The states:
 *
 *	NONE	Nothing is installed: a session that is never ended this way
 *			pays nothing.
 *	ARMED	The self-kill.  PqCommMethods points at a copy of the real
 *			methods whose putmessage watches the message types; everything
 *			passes through until the statement ends:
 *			  'C' CommandComplete, 'E' ErrorResponse (the statement failed
 *			  after the kill), 's' PortalSuspended (an Execute's row limit
 *			  reached), 'V' FunctionCallResponse (a fastpath call):
 *				the message is sent and flushed -- blocking until a slow
 *				reader has taken it all -- and the session goes to ENDING;
 *			  'Z' ReadyForQuery: never sent; the session goes to ENDING.
 *	AFTER_XACT
 *			The end after the transaction, armed once the transaction has
 *			ended or its failed block is being left.  The session goes to
 *			ENDING:
 *			  at 'Z' with status 'I' (in no transaction): the message is
 *				sent first;
 *			  at 'C' when no transaction is left (the statement that ended
 *				it): the message is sent, then a ReadyForQuery with status
 *				'I' in place of the one that would follow.
 *			A 'Z' with status 'T' or 'E' (a block goes on) passes.
 *	ENDING	ProcDiePending is set, as die() sets it for SIGTERM, and
 *			interrupts are processed at once: PostgreSQL's own FATAL 57P01
 *			ends the session (a transaction still open rolls back), and the
 *			DETAIL says who ended it (kill.c).  Where interrupts are held
 *			(an error being reported, a transaction's end), the FATAL comes
 *			at the next interrupt check: the main loop checks right after
 *			reading any message and before acting on it, and a
 *			ReadyForQuery met on the way is never sent.  Everything else
 *			passes through, the FATAL included.
 *
 * A FATAL or PANIC of another origin on the way (pg_terminate_backend(),
 * a shutdown) is the session's one end: it passes, and nothing ends the
 * session a second time while it is sent.
 *
 * No timer and no polling: a session waiting to end costs no CPU.  Only
 * the leader of a parallel query runs kill_session() (it is PARALLEL
 * UNSAFE); workers swap PqCommMethods for their own queue and are not
 * affected.
 *
 * This file owns the end of a session from inside it.  It calls no other
 * file of the project.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  selfkill.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "libpq/libpq.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"

#include "kill_session.h"

typedef enum KsEndState
{
	KS_END_NONE,
	KS_END_ARMED,
	KS_END_AFTER_XACT,
	KS_END_ENDING
} KsEndState;

static KsEndState end_state = KS_END_NONE;

/* Why this session is ending by our doing (ENDING only), for its DETAIL. */
static KsEndReason end_reason = KS_ENDED_NOT;

/* The methods in place when the watch began, and the watcher. */
static const PQcommMethods *real_comm = NULL;
static PQcommMethods watch_comm;

static int	ks_watch_putmessage(char msgtype, const char *s, size_t len);

/* Put the watcher in place, once. */
static void
ks_watch(void)
{
	if (real_comm != NULL)
		return;
	real_comm = PqCommMethods;
	watch_comm = *real_comm;
	watch_comm.putmessage = ks_watch_putmessage;
	PqCommMethods = &watch_comm;
}

/*
 * End the session for reason: request termination as die() does and serve it now if
 * interrupts may be served here; otherwise at the next interrupt check.
 */
static void
ks_end(KsEndReason reason)
{
	end_state = KS_END_ENDING;
	end_reason = reason;
	if (proc_exit_inprogress)
		return;
	InterruptPending = true;
	ProcDiePending = true;
	/* A wait for the client, if the FATAL has to wait, wakes at once. */
	SetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * Whether an ErrorResponse reports a FATAL or a PANIC: the session is
 * ending already, and must not be ended a second time while that is sent.
 * Its fields are a type byte and a string each, up to a zero byte; 'V' is
 * the severity, never translated.
 */
static bool
ks_error_ends_session(const char *s, size_t len)
{
	size_t		i = 0;

	while (i < len && s[i] != '\0')
	{
		char		field = s[i++];
		const char *value = s + i;
		size_t		vlen = strnlen(value, len - i);

		if (field == 'V')
			return vlen == 5 && (memcmp(value, "FATAL", 5) == 0 ||
								 memcmp(value, "PANIC", 5) == 0);
		i += vlen + 1;
	}
	return false;
}

static int
ks_watch_putmessage(char msgtype, const char *s, size_t len)
{
	int			result;

	if (end_state == KS_END_NONE)
		return real_comm->putmessage(msgtype, s, len);

	/* An ending session never reports itself ready again. */
	if (end_state == KS_END_ENDING)
	{
		if (msgtype == 'Z')
			return 0;
		return real_comm->putmessage(msgtype, s, len);
	}

	/* Ended another way meanwhile: that FATAL is the session's one end. */
	if (msgtype == 'E' && ks_error_ends_session(s, len))
	{
		end_state = KS_END_ENDING;
		end_reason = KS_ENDED_NOT;
		return real_comm->putmessage(msgtype, s, len);
	}

	if (end_state == KS_END_ARMED)
	{
		/* The session never reports itself ready for another query. */
		if (msgtype == 'Z')
		{
			ks_end(KS_ENDED_BY_SELF_KILL);
			return 0;
		}
		result = real_comm->putmessage(msgtype, s, len);
		if (msgtype == 'C' || msgtype == 'E' || msgtype == 's' || msgtype == 'V')
		{
			/* The whole result reaches the client before the session ends. */
			(void) real_comm->flush();
			ks_end(KS_ENDED_BY_SELF_KILL);
		}
		return result;
	}

	/* KS_END_AFTER_XACT */
	if (msgtype == 'Z' && len >= 1 && s[0] == 'I')
	{
		result = real_comm->putmessage(msgtype, s, len);
		ks_end(KS_ENDED_AFTER_XACT);
		return result;
	}
	if (msgtype == 'C' && !IsTransactionOrTransactionBlock())
	{
		result = real_comm->putmessage(msgtype, s, len);
		(void) real_comm->putmessage('Z', "I", 1);
		ks_end(KS_ENDED_AFTER_XACT);
		return result;
	}
	return real_comm->putmessage(msgtype, s, len);
}

/*
 * Called by the kill when it names the caller's own session: watch for the
 * end of the current statement.
 */
void
ks_end_after_statement(void)
{
	if (end_state == KS_END_ARMED || end_state == KS_END_ENDING)
		return;
	ks_watch();
	end_state = KS_END_ARMED;
}

/*
 * Called for a session marked to disconnect once its transaction has ended,
 * or its failed block is being left: end it as its client is told so.
 */
void
ks_end_after_transaction(void)
{
	if (end_state != KS_END_NONE)
		return;
	ks_watch();
	end_state = KS_END_AFTER_XACT;
}

/*
 * Called for a session marked to disconnect that must end now: one waiting
 * for its client outside any transaction (reason KS_ENDED_IDLE), or a
 * procedure whose transaction has ended (KS_ENDED_AFTER_XACT).  The FATAL
 * comes at the next interrupt check; a ReadyForQuery on the way is not
 * sent.
 */
void
ks_end_now(KsEndReason reason)
{
	if (end_state == KS_END_ENDING || end_state == KS_END_ARMED)
		return;
	ks_watch();
	ks_end(reason);
}

/* Why the session is ending by our doing, or KS_ENDED_NOT: another end. */
KsEndReason
ks_end_reason(void)
{
	return end_reason;
}
