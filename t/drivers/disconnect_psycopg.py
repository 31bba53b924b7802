# What psycopg 3 shows for disconnect_session(..., post_transaction =>
# true): the commit (or autocommit statement) succeeds, its row is there,
# and the next statement fails.  Used by t/011_disconnect.pl:
#   python3 disconnect_psycopg.py HOST PORT
import sys
import threading
import time

import psycopg

host, port = sys.argv[1], sys.argv[2]


def connect(user, autocommit=False):
    return psycopg.connect(host=host, port=port, dbname="postgres", user=user,
                           autocommit=autocommit)


def session_id(conn):
    return conn.execute("SELECT id FROM processlist WHERE pid = pg_backend_pid()").fetchone()[0]


def outcome(f):
    try:
        f()
        return "ok"
    except Exception as e:
        return "%s %s" % (type(e).__name__, getattr(e, "sqlstate", None) or "-")


dba = connect("dba", autocommit=True)


def disconnect(sid):
    dba.execute("SELECT disconnect_session(%s, post_transaction => true)", (str(sid),))


def rows(a):
    return dba.execute("SELECT count(*) FROM t WHERE a = %s", (a,)).fetchone()[0]


# A transaction: BEGIN; INSERT; the disconnect; commit().
app = connect("app")
sid = session_id(app)
app.execute("INSERT INTO t VALUES (1)")
disconnect(sid)
print("commit:", outcome(app.commit))
print("row:", rows(1))
print("next:", outcome(lambda: app.execute("SELECT 1")))

# An autocommit statement running as the disconnect comes.
app = connect("app", autocommit=True)
sid = session_id(app)
marker = threading.Timer(0.3, disconnect, (sid,))
marker.start()
print("autocommit:", outcome(lambda: app.execute("INSERT INTO t SELECT 2 FROM pg_sleep(1)")))
marker.join()
print("row:", rows(2))
print("next:", outcome(lambda: app.execute("SELECT 1")))
