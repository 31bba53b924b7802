/*-------------------------------------------------------------------------
 *
 * node_option.h
 *		Whom a call to another node may trust, and its connection options
 *		(node_option.c): for the forwarding files only.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  node_option.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_NODE_OPTION_H
#define KS_NODE_OPTION_H

#include "kill_session.h"

extern bool ks_call_trusted_options(KsNodeCall *call);
extern const char *ks_call_option(const KsNodeCall *call, const char *keyword);
extern void ks_call_add_option(KsNodeCall *call, const char *keyword,
							   const char *value);
extern void ks_call_set_option(KsNodeCall *call, const char *keyword,
							   const char *value);

#endif							/* KS_NODE_OPTION_H */
