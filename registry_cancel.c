/*-------------------------------------------------------------------------
 *
 * registry_cancel.c
 *		The registry's side of a cancel by SQL_ID: the ask, written into the
 *		asked session's slot, and its answer, written by that session's
 *		SIGINT handler into the asker's.
 *
 * Only the asked session knows, as the signal arrives, whether it still
 * runs the statement named; so the asker reserves its ask under the
 * registry lock (one unanswered ask per session), logs it, then sends it
 * with SIGINT, and the session's handler answers without the lock:
 * TAKEN or REFUSED in its own slot's state by a compare-and-swap (an asker
 * that stopped waiting turns ASKED into ABANDONED, and the ask and its
 * asker stay for the handler), and the same answer in the asker's answer
 * box, by a compare-and-swap on the ask's number, so that a late answer
 * to an earlier ask is dropped and the answer outlives the asked session.
 * The number and the start of the statement it last took stay in its slot
 * apart from the ask, so the asker of a taken cancel knows which statement
 * to wait for even after another asker came.
 *
 * Part of the registry (registry_slot.h): it may use the slots, and calls
 * no file of the project but registry.c.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  registry_cancel.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/proc.h"

#include "compat.h"
#include "registry.h"
#include "registry_slot.h"

/*
 * Reserve an ask of kind of the session sid, still held by pid: the
 * statement's query ID, or the idle period and the DETAIL of its end.
 */
static KsAskResult
ks_reserve_ask(uint32 sid, pid_t pid, const KsKiller *by, KsAskKind kind,
			   int64 query_id, const KsIdlePeriod *period, const char *detail,
			   KsAsk *ask)
{
	int			me = KS_MY_PROCNO;
	KsSlot	   *slot;
	KsSqlCancel state;
	uint32		seq;
	int			idx;

	if (me < 0 || me >= ks_shared->nslots)
		elog(ERROR, "kill_session: PGPROC number %d out of range", me);
	LWLockAcquire(ks_shared->lock, LW_EXCLUSIVE);
	idx = ks_find_slot_locked(sid);
	if (idx < 0 || ks_shared->slots[idx].pid != pid)
	{
		LWLockRelease(ks_shared->lock);
		return KS_ASK_GONE;
	}
	slot = &ks_shared->slots[idx];
	if (!slot->handler_ours)
	{
		LWLockRelease(ks_shared->lock);
		return KS_ASK_NOT_OURS;
	}
	/* One ask at a time: another caller's is still unanswered. */
	state = pg_atomic_read_u32(&slot->cancel_state);
	if (state == KS_SQL_CANCEL_RESERVED || state == KS_SQL_CANCEL_ASKED ||
		state == KS_SQL_CANCEL_ABANDONED)
	{
		LWLockRelease(ks_shared->lock);
		return KS_ASK_BUSY;
	}
	do
		seq = ks_shared->next_ask_seq++ & KS_ASK_SEQ_MASK;
	while (seq == 0);
	slot->cancel_kind = (uint8) kind;
	slot->cancel_query_id = query_id;
	if (period != NULL)
		slot->idle_period = *period;
	else
		memset(&slot->idle_period, 0, sizeof(KsIdlePeriod));
	strlcpy(slot->idle_detail, detail ? detail : "", KS_IDLE_DETAIL_LEN);
	slot->cancel_by = *by;
	slot->cancel_asker = me;
	slot->cancel_seq = seq;
	pg_atomic_write_u32(&ks_shared->slots[me].ask_answer,
						KS_BOX(seq, KS_SQL_CANCEL_ASKED));
	pg_write_barrier();
	pg_atomic_write_u32(&slot->cancel_state, KS_SQL_CANCEL_RESERVED);
	LWLockRelease(ks_shared->lock);

	ask->sid = sid;
	ask->pid = pid;
	ask->seq = seq;
	return KS_ASK_SENT;
}

KsAskResult
ks_registry_reserve_cancel(uint32 sid, pid_t pid, const KsKiller *by,
						   int64 query_id, KsAsk *ask)
{
	return ks_reserve_ask(sid, pid, by, KS_ASK_SQL_ID, query_id, NULL, NULL,
						  ask);
}

KsAskResult
ks_registry_reserve_idle_end(uint32 sid, pid_t pid, const KsKiller *by,
							 const KsIdlePeriod *period, const char *detail,
							 KsAsk *ask)
{
	return ks_reserve_ask(sid, pid, by, KS_ASK_IDLE_END, 0, period, detail,
						  ask);
}

/* The slot of the session ask was made of, if it still holds it; or NULL. */
static KsSlot *
ks_ask_slot_locked(const KsAsk *ask)
{
	int			idx = ks_find_slot_locked(ask->sid);

	if (idx < 0 || ks_shared->slots[idx].pid != ask->pid)
		return NULL;
	return &ks_shared->slots[idx];
}

KsAskResult
ks_registry_send_cancel(const KsAsk *ask)
{
	KsAskResult result = KS_ASK_SENT;
	int			signal_errno = 0;
	KsSlot	   *slot;

	LWLockAcquire(ks_shared->lock, LW_EXCLUSIVE);
	slot = ks_ask_slot_locked(ask);
	if (slot == NULL)
	{
		LWLockRelease(ks_shared->lock);
		return KS_ASK_GONE;
	}
	/* Reserved: no one but this caller changes it. */
	Assert(slot->cancel_seq == ask->seq &&
		   pg_atomic_read_u32(&slot->cancel_state) == KS_SQL_CANCEL_RESERVED);
	/* The handler may have been replaced while the ask was logged. */
	if (!slot->handler_ours)
		result = KS_ASK_NOT_OURS;
	else
	{
		pg_atomic_write_u32(&slot->cancel_state, KS_SQL_CANCEL_ASKED);
		pg_memory_barrier();
		/* Backends lead their own process group, as pg_signal_backend knows. */
		if (kill(-ask->pid, SIGINT) != 0 && kill(ask->pid, SIGINT) != 0)
		{
			signal_errno = errno;
			result = (signal_errno == ESRCH) ? KS_ASK_GONE : KS_ASK_SIGNAL_FAILED;
		}
	}
	if (result != KS_ASK_SENT)
		pg_atomic_write_u32(&slot->cancel_state, KS_SQL_CANCEL_NONE);
	LWLockRelease(ks_shared->lock);
	errno = signal_errno;
	return result;
}

/*
 * The answer to the ask so far; with TAKEN, the start of the statement
 * taken, or 0 if that is no longer known: the session has ended (and its
 * statement with it), or its handler has taken a later ask since (the
 * statement may still run, as a COPY waiting for its client does).  ENDED
 * when the session is gone and had not answered: under the lock, a slot
 * found free was cleared by its backend's exit, which came after any
 * answer its handler wrote, so that answer is seen here.
 */
KsSqlCancel
ks_registry_cancel_answer(const KsAsk *ask, TimestampTz *stmt_start)
{
	KsSlot	   *slot;
	uint32		box;
	KsSqlCancel answer;

	*stmt_start = 0;
	LWLockAcquire(ks_shared->lock, LW_SHARED);
	slot = ks_ask_slot_locked(ask);
	box = pg_atomic_read_u32(&ks_shared->slots[KS_MY_PROCNO].ask_answer);
	answer = KS_BOX_SEQ(box) == ask->seq ? KS_BOX_STATE(box) : KS_SQL_CANCEL_ASKED;
	if (answer == KS_SQL_CANCEL_TAKEN && slot != NULL &&
		slot->taken_seq == ask->seq)
	{
		TimestampTz start;

		/* The handler writes the number last: read it again after. */
		pg_read_barrier();
		start = slot->taken_stmt_start;
		pg_read_barrier();
		if (slot->taken_seq == ask->seq)
			*stmt_start = start;
	}
	else if (answer == KS_SQL_CANCEL_ASKED && slot == NULL)
		answer = KS_SQL_CANCEL_ENDED;
	LWLockRelease(ks_shared->lock);
	return answer;
}

void
ks_registry_end_cancel(const KsAsk *ask)
{
	KsSlot	   *slot;

	LWLockAcquire(ks_shared->lock, LW_EXCLUSIVE);
	slot = ks_ask_slot_locked(ask);
	if (slot != NULL && slot->cancel_seq == ask->seq)
	{
		uint32		asked = KS_SQL_CANCEL_ASKED;

		/* Reserved and never sent: nothing to leave behind. */
		if (pg_atomic_read_u32(&slot->cancel_state) == KS_SQL_CANCEL_RESERVED)
			pg_atomic_write_u32(&slot->cancel_state, KS_SQL_CANCEL_NONE);

		/*
		 * Unanswered: the handler still decides when the signal comes, and
		 * the ask and its asker stay for it.
		 */
		else
			(void) pg_atomic_compare_exchange_u32(&slot->cancel_state, &asked,
												  KS_SQL_CANCEL_ABANDONED);
	}
	LWLockRelease(ks_shared->lock);
}

KsSqlCancel
ks_my_cancel_ask(KsAskSeen *seen)
{
	KsSlot	   *slot;
	KsSqlCancel state;

	if (ks_shared == NULL || ks_my_sid == 0 || MyProc == NULL)
		return KS_SQL_CANCEL_NONE;
	slot = &ks_shared->slots[KS_MY_PROCNO];
	state = pg_atomic_read_u32(&slot->cancel_state);
	if (state != KS_SQL_CANCEL_ASKED && state != KS_SQL_CANCEL_ABANDONED)
		return KS_SQL_CANCEL_NONE;
	/* The ask was written before the state, and before the signal. */
	pg_read_barrier();
	seen->kind = (KsAskKind) slot->cancel_kind;
	seen->query_id = slot->cancel_query_id;
	seen->period = slot->idle_period;
	seen->by = slot->cancel_by;
	memcpy(seen->detail, slot->idle_detail, KS_IDLE_DETAIL_LEN);
	return state;
}

/*
 * Answer the ask found in state asked: in this slot, where it frees the
 * slot for the next ask, and in the asker's answer box.
 */
void
ks_my_cancel_answer(KsSqlCancel asked, KsSqlCancel answer,
					TimestampTz stmt_start)
{
	KsSlot	   *slot = &ks_shared->slots[KS_MY_PROCNO];
	uint32		expected = asked;
	int			asker = slot->cancel_asker;
	uint32		seq = slot->cancel_seq;
	uint32		box = KS_BOX(seq, KS_SQL_CANCEL_ASKED);

	if (answer == KS_SQL_CANCEL_TAKEN)
	{
		slot->taken_seq = 0;
		pg_write_barrier();
		slot->taken_stmt_start = stmt_start;
		pg_write_barrier();
		slot->taken_seq = seq;
		pg_write_barrier();
	}
	/* The asker may stop waiting meanwhile: ASKED becomes ABANDONED. */
	while (!pg_atomic_compare_exchange_u32(&slot->cancel_state, &expected,
										   answer))
	{
		if (expected != KS_SQL_CANCEL_ASKED &&
			expected != KS_SQL_CANCEL_ABANDONED)
			return;
	}
	if (asker >= 0 && asker < ks_shared->nslots)
		(void) pg_atomic_compare_exchange_u32(&ks_shared->slots[asker].ask_answer,
											  &box, KS_BOX(seq, answer));
}

void
ks_registry_publish_handler(bool ours)
{
	KsSlot	   *slot;

	if (ks_shared == NULL || ks_my_sid == 0 || MyProc == NULL)
		return;
	slot = &ks_shared->slots[KS_MY_PROCNO];
	LWLockAcquire(ks_shared->lock, LW_EXCLUSIVE);
	if (slot->pid == MyProcPid)
		slot->handler_ours = ours;
	LWLockRelease(ks_shared->lock);
}
