/*-------------------------------------------------------------------------
 *
 * node_answer.h
 *		What comes back from a call to another node (node_answer.c): for
 *		the forwarding files only.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  node_answer.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_NODE_ANSWER_H
#define KS_NODE_ANSWER_H

#include "kill_session.h"

extern void ks_call_fail(KsNodeCall *call, int sqlerrcode, char *message,
						 char *detail, char *hint);
extern void ks_call_lost(KsNodeCall *call, char *detail);
extern void ks_call_fail_result(KsNodeCall *call, const struct pg_result *res);
extern void ks_call_connect_failed(KsNodeCall *call);
extern void ks_notice_receiver(void *arg, const struct pg_result *res);
extern void ks_call_raise_notices(KsNodeCall *call);
extern void ks_call_answered(KsNodeCall *call, struct pg_result *res);

#endif							/* KS_NODE_ANSWER_H */
