// What pgJDBC shows for disconnect_session(..., post_transaction => true):
// the commit (or autocommit statement) succeeds, its row is there, and the
// next statement fails.  Used by t/011_disconnect.pl:
//   java -cp /usr/share/java/postgresql.jar DisconnectJdbc.java HOST PORT
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

public class DisconnectJdbc
{
	interface Step
	{
		void run() throws Exception;
	}

	static String url;

	static Connection connect(String user, boolean autocommit) throws SQLException
	{
		Connection c = DriverManager.getConnection(url + "&user=" + user);
		c.setAutoCommit(autocommit);
		return c;
	}

	static long value(Connection c, String sql) throws SQLException
	{
		try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(sql))
		{
			r.next();
			return r.getLong(1);
		}
	}

	static void run(Connection c, String sql) throws SQLException
	{
		try (Statement s = c.createStatement())
		{
			s.execute(sql);
		}
	}

	static String outcome(Step step)
	{
		try
		{
			step.run();
			return "ok";
		}
		catch (Exception e)
		{
			String state = e instanceof SQLException ? ((SQLException) e).getSQLState() : null;
			return e.getClass().getSimpleName() + " " + (state == null ? "-" : state);
		}
	}

	public static void main(String[] args) throws Exception
	{
		url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/postgres?sslmode=disable";
		Connection dba = connect("dba", true);

		// A transaction: BEGIN; INSERT; the disconnect; commit().
		Connection app = connect("app", false);
		long sid = value(app, "SELECT id FROM processlist WHERE pid = pg_backend_pid()");
		run(app, "INSERT INTO t VALUES (1)");
		run(dba, "SELECT disconnect_session('" + sid + "', post_transaction => true)");
		System.out.println("commit: " + outcome(app::commit));
		System.out.println("row: " + value(dba, "SELECT count(*) FROM t WHERE a = 1"));
		final Connection first = app;
		System.out.println("next: " + outcome(() -> run(first, "SELECT 1")));

		// An autocommit statement running as the disconnect comes.
		Connection app2 = connect("app", true);
		long sid2 = value(app2, "SELECT id FROM processlist WHERE pid = pg_backend_pid()");
		Thread marker = new Thread(() -> {
			try
			{
				Thread.sleep(300);
				run(dba, "SELECT disconnect_session('" + sid2 + "', post_transaction => true)");
			}
			catch (Exception e)
			{
				throw new RuntimeException(e);
			}
		});
		marker.start();
		System.out.println("autocommit: " + outcome(() -> run(app2, "INSERT INTO t SELECT 2 FROM pg_sleep(1)")));
		marker.join();
		System.out.println("row: " + value(dba, "SELECT count(*) FROM t WHERE a = 2"));
		System.out.println("next: " + outcome(() -> run(app2, "SELECT 1")));
	}
}
