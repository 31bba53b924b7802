/*-------------------------------------------------------------------------
 *
 * lockgraph.h
 *		Who waits for whom, read once from the lock table: what v$session
 *		may ask of lockgraph.c.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  lockgraph.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_LOCKGRAPH_H
#define KS_LOCKGRAPH_H

#include "registry.h"

/* One edge of the lock graph: waiter waits for blocker. */
typedef struct KsBlock
{
	int			waiter;			/* PID of a waiting process's group leader */
	int			blocker;		/* of a blocking one's; 0 for a prepared
								 * transaction */
	bool		holds;			/* it holds a conflicting lock, rather than
								 * waits ahead in the queue */
	int64		blocker_id;		/* its session ID, 0 if it is no session */
	int			blocker_node;	/* its index in the graph's nodes */
} KsBlock;

/* A process of the graph: a waiter, a blocker or both. */
typedef struct KsGraphNode
{
	int			pid;			/* a group leader's PID; 0 stands for every
								 * prepared transaction */
	int64		sid;			/* its session ID, 0 if it is no session */
	int			first_block;	/* its blocks: blocks[first_block .. +nblocks] */
	int			nblocks;
	bool		waiting;		/* it waits for a lock */
	int64		head_id;		/* the head of its chain, 0 if none */
	const char *head_status;	/* VALID, DEADLOCK or UNKNOWN */
} KsGraphNode;

/* What a process waits for, as its PGPROC said in the same read. */
typedef struct KsWait
{
	int			pid;
	uint32		wait_event_info;
} KsWait;

/* The lock graph, as read at one moment. */
typedef struct KsLockGraph
{
	KsBlock    *blocks;			/* by waiter, then in the order shown */
	int			nblocks;
	KsGraphNode *nodes;			/* by PID */
	int			nnodes;
	KsWait	   *waits;			/* what every process waits for, by PID */
	int			nwaits;
} KsLockGraph;

extern void ks_lock_graph_read(KsLockGraph *graph, const KsSession *sessions,
							   int nsessions);
extern const KsGraphNode *ks_lock_graph_node(const KsLockGraph *graph, int pid);
extern uint32 ks_lock_graph_wait_event(const KsLockGraph *graph, int pid);

#endif							/* KS_LOCKGRAPH_H */
