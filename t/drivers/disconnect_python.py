# What psycopg 3 and psycopg2 show for disconnect_session(...,
# post_transaction => true): the commit (or autocommit statement)
# succeeds, its row is there, and the next statement fails.  Used by
# t/011_disconnect.pl:
#   python3 disconnect_python.py psycopg|psycopg2 HOST PORT
import importlib
import sys
import threading

driver, host, port = sys.argv[1], sys.argv[2], sys.argv[3]
db = importlib.import_module(driver)


def connect(user, autocommit=False):
    conn = db.connect(host=host, port=port, dbname="postgres", user=user)
    conn.autocommit = autocommit
    return conn


def query(conn, sql, args=None):
    cur = conn.cursor()
    cur.execute(sql, args)
    return cur.fetchone() if cur.description else None


def outcome(f):
    try:
        f()
        return "ok"
    except Exception as e:
        # psycopg 3 names the SQLSTATE sqlstate, psycopg2 pgcode.
        code = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        return "%s %s" % (type(e).__name__, code or "-")


dba = connect("dba", autocommit=True)


def disconnect(sid):
    query(dba, "SELECT disconnect_session(%s, post_transaction => true)", (str(sid),))


def rows(a):
    return query(dba, "SELECT count(*) FROM t WHERE a = %s", (a,))[0]


def session_id(conn):
    return query(conn, "SELECT id FROM processlist WHERE pid = pg_backend_pid()")[0]


# A transaction: BEGIN; INSERT; the disconnect; commit().
app = connect("app")
sid = session_id(app)
query(app, "INSERT INTO t VALUES (1)")
disconnect(sid)
print("commit:", outcome(app.commit))
print("row:", rows(1))
print("next:", outcome(lambda: query(app, "SELECT 1")))

# An autocommit statement running as the disconnect comes.
app = connect("app", autocommit=True)
sid = session_id(app)
marker = threading.Timer(0.3, disconnect, (sid,))
marker.start()
print("autocommit:", outcome(lambda: query(app, "INSERT INTO t SELECT 2 FROM pg_sleep(1)")))
marker.join()
print("row:", rows(2))
print("next:", outcome(lambda: query(app, "SELECT 1")))
