/*-------------------------------------------------------------------------
 *
 * registry_slot.h
 *		The registry's shared state, private to its two files.
 *
 * The registry is one module in two files: registry.c (the slots, the
 * IDs, the marks of kills and disconnects) and registry_cancel.c (the ask
 * and answer of a cancel by SQL_ID, the one protocol in which a signal
 * handler writes a slot without the lock).  Only these two include this
 * header; every other file asks the registry through registry.h and gets
 * copies, never the struct.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  registry_slot.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_REGISTRY_SLOT_H
#define KS_REGISTRY_SLOT_H

#include "port/atomics.h"
#include "storage/lwlock.h"

#include "registry.h"

/*
 * One registry slot per PGPROC, indexed by PGPROC number.  A slot is in use
 * while pid != 0.  The owning backend fills it once authenticated and
 * clears it in its own on_shmem_exit callback; all of it is read and
 * written under the registry lock, but for the state and the answer box of
 * a cancel by SQL_ID, which a SIGINT handler writes (below).
 */
/* History rows a slot remembers, to write on them when its session ended. */
#define KS_END_ROWS		8

typedef struct KsSlot
{
	pid_t		pid;			/* owning backend, 0 when free */
	uint32		sid;			/* client session ID */
	TimestampTz connect_time;	/* when the slot was filled */
	NameData	user_name;		/* role the session authenticated as */
	NameData	db_name;		/* database it connected to */
	char		host[KS_HOST_LEN];	/* "address:port" or "localhost" */

	/*
	 * Written by a killer, disconnecter or canceller before it signals; read
	 * by the backend as it reports its end or its cancel.
	 */
	bool		marked[KS_NUM_ACTIONS];
	KsKiller	by[KS_NUM_ACTIONS];

	/*
	 * The history rows of the kills and disconnects aimed at it (the first
	 * KS_END_ROWS), on which the backend writes when it ended.
	 */
	uint64		end_rows[KS_END_ROWS];
	int			n_end_rows;

	/*
	 * A cancel of a statement by its SQL_ID asked of this backend.  The ask
	 * (query ID, who asked, the asker's PGPROC number and the ask's number)
	 * is written under the lock, and only while no ask is unanswered
	 * (cancel_state RESERVED, ASKED or ABANDONED), so the SIGINT handler
	 * reads it stable; the handler answers in cancel_state without the lock.
	 */
	uint8		cancel_kind;	/* KsAskKind */
	int64		cancel_query_id;
	KsIdlePeriod idle_period;	/* an idle end's period, and its DETAIL */
	char		idle_detail[KS_IDLE_DETAIL_LEN];
	KsKiller	cancel_by;
	int			cancel_asker;
	uint32		cancel_seq;
	pg_atomic_uint32 cancel_state;

	/*
	 * The last ask the handler took, by its number, and the start of the
	 * statement it took then: written by the handler alone, number last, and
	 * not by the next ask, so that the asker of a taken cancel can still tell
	 * which statement to wait for after another asker came.
	 */
	volatile uint32 taken_seq;
	volatile TimestampTz taken_stmt_start;

	/* Whether the backend's SIGINT handler is this library's, as it saw. */
	bool		handler_ours;

	/*
	 * Its kill_session.max_idle_blocker_time and the setting's scope, written
	 * by the backend alone without the lock, read by the checker.
	 */
	pg_atomic_uint32 idle_limit_ms;
	pg_atomic_uint32 idle_limit_scope;

	/*
	 * The answer to this process's own ask, KS_BOX(seq, KsSqlCancel), in the
	 * slot of its PGPROC (with a session ID or not): the asked backend's
	 * handler writes it by a compare-and-swap on the ask's number, so a late
	 * answer to an earlier ask is dropped.  Here, it outlives the asked
	 * backend, whose slot is cleared as it exits.
	 */
	pg_atomic_uint32 ask_answer;
} KsSlot;

typedef struct KsShared
{
	LWLock	   *lock;			/* protects everything below */
	uint32		next_sid;		/* next ID to hand out */
	bool		wrapped;		/* next_sid has passed 4294967295 */
	uint32		next_ask_seq;	/* number of the next cancel by SQL_ID */
	int			checker_procno; /* the checker's PGPROC number, -1 if none */
	pid_t		checker_pid;
	pg_atomic_uint64 checker_counts[KS_CHECK_NUM];	/* written by the checker */
	pg_atomic_uint32 checker_min_limit; /* the smallest limit it last saw */
	int			nslots;
	KsSlot		slots[FLEXIBLE_ARRAY_MEMBER];
} KsShared;

extern KsShared *ks_shared;

/* An answer box's word: the ask's number (28 bits) and its KsSqlCancel. */
#define KS_ASK_SEQ_MASK		0x0FFFFFFF
#define KS_BOX(seq, state)	(((uint32) (seq) << 4) | (uint32) (state))
#define KS_BOX_SEQ(box)		((box) >> 4)
#define KS_BOX_STATE(box)	((KsSqlCancel) ((box) & 0xF))

/* This backend's client session ID, 0 when it has none. */
extern uint32 ks_my_sid;

extern int	ks_find_slot_locked(uint32 sid);

#endif							/* KS_REGISTRY_SLOT_H */
