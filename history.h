/*-------------------------------------------------------------------------
 *
 * history.h
 *		The record of actions on sessions: a ring of rows in shared memory
 *		and the counters beside it, as record.c fills them and reads them.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  history.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_HISTORY_H
#define KS_HISTORY_H

#include "utils/backend_status.h"
#include "utils/timestamp.h"

#include "registry.h"

/* Longest statement text a row keeps, in bytes with its terminator. */
#define KS_HISTORY_TEXT_LEN	1024

/* Longest outcome detail a row keeps. */
#define KS_HISTORY_DETAIL_LEN	128

/* What was done: the action column. */
typedef enum KsHistAction
{
	KS_H_KILL,					/* kill_session(), kill_sessions() */
	KS_H_DISCONNECT,			/* disconnect_session() without
								 * post_transaction: a kill */
	KS_H_DISCONNECT_POST,		/* disconnect_session(post_transaction) */
	KS_H_CANCEL,				/* cancel_sql() */
	KS_H_CANCEL_SQL_ID,			/* cancel_sql() with a SQL_ID */
	KS_H_DRAIN,					/* the kill at a drain deadline */
	KS_H_IDLE_BLOCKER,			/* the end of an idle blocker: by the policy,
								 * or kill_blockers() */
	KS_H_NUM_ACTIONS
} KsHistAction;

/* How it ended, as its actor saw: the outcome column. */
typedef enum KsHistOutcome
{
	KS_O_PENDING,				/* written, not completed: the actor is still
								 * at work, or ended before it knew */
	KS_O_EXITED,				/* the session ended within the wait */
	KS_O_CANCELLED,				/* the statement stopped */
	KS_O_MARKED,				/* marked: it ends (or stops) when it can */
	KS_O_NOT_RUNNING,			/* nothing to act on: no statement, another
								 * statement, or the session had ended */
	KS_O_REFUSED,				/* not done, for the reason in detail */
	KS_O_UNKNOWN,				/* a node's answer was lost (08007) */
	KS_O_DONE,					/* a forwarded call: the node answered true */
	KS_O_NOT_DONE,				/* a forwarded call: the node answered false */
	KS_O_NUM_OUTCOMES
} KsHistOutcome;

/* Who acted, for the counters. */
typedef enum KsHistActor
{
	KS_A_SESSION,				/* a session of this server, for itself */
	KS_A_FORWARDED,				/* a session acting for another node's */
	KS_A_AUTOMATIC,				/* the checker: at a deadline, or the policy */
	KS_A_NUM_ACTORS
} KsHistActor;

/* One row of the history. */
typedef struct KsHistRow
{
	uint64		seq;			/* its number, from 1; 0 for a free row */
	TimestampTz at;				/* when it was written: before the signal */
	TimestampTz done_at;		/* when its outcome was written, or 0 */
	TimestampTz ended_at;		/* when the session ended, as it said on its
								 * way out; 0 if not (yet) */
	uint8		action;			/* KsHistAction */
	uint8		outcome;		/* KsHistOutcome */
	bool		forwarded;		/* sent to node victim_node, not done here */

	/* the session acted on */
	int64		victim_id;		/* its session ID */
	int			victim_node;	/* its node */
	int			victim_pid;		/* 0 if not known here */
	Oid			victim_roleid;	/* InvalidOid if not known here */
	NameData	victim_role;
	NameData	victim_db;
	char		victim_app[NAMEDATALEN];
	char		victim_client[KS_HOST_LEN];
	int			victim_state;	/* BackendState, -1 if not known */
	TimestampTz victim_xact_start;
	int64		victim_sql_id;	/* the statement it ran, or the last one */
	bool		victim_running; /* whether it ran one */
	char		victim_statement[KS_HISTORY_TEXT_LEN];
	int			blocking;		/* sessions it held up, -1 if not known */

	/* the actor */
	KsKiller	actor;
	int			actor_node;

	char		detail[KS_HISTORY_DETAIL_LEN];	/* why, with the outcome */
} KsHistRow;

/* The counters: [action][outcome][actor]. */
typedef struct KsHistCounts
{
	uint64		n[KS_H_NUM_ACTIONS][KS_O_NUM_OUTCOMES][KS_A_NUM_ACTORS];
	TimestampTz reset_at;
} KsHistCounts;

extern void ks_define_history_settings(void);
extern void ks_history_shmem_request(void);
extern void ks_history_shmem_startup(void);
extern bool ks_history_on(void);

/*
 * Write a row (row->seq and row->at are set): its number, 0 when the
 * history is off.  Complete it with its outcome; a row overwritten by the
 * ring meanwhile is left alone, but the counters count the outcome all the
 * same.
 */
extern uint64 ks_history_write(KsHistRow *row);
extern void ks_history_complete(uint64 seq, KsHistAction action,
								KsHistActor actor, KsHistOutcome outcome,
								const char *detail);
extern void ks_history_count(KsHistAction action, KsHistActor actor,
							 KsHistOutcome outcome);

/* The session of row seq has ended, now. */
extern void ks_history_ended(uint64 seq);

/* A copy of every row in use, oldest first; *count is set.  Palloc'd. */
extern KsHistRow *ks_history_rows(int *count);
extern void ks_history_counts(KsHistCounts *counts);
extern void ks_history_reset_counts(void);

extern const char *ks_history_action_name(KsHistAction action);
extern const char *ks_history_outcome_name(KsHistOutcome outcome);
extern const char *ks_history_actor_name(KsHistActor actor);

#endif							/* KS_HISTORY_H */
