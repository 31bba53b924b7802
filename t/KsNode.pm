# Shared set-up for the kill_session TAP tests.

package KsNode;

use strict;
use warnings;
use Exporter 'import';
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use KsWire;

our @EXPORT = qw(ks_node ks_cluster ks_registry_query ks_pgbouncer ks_slow
  ks_victim ks_run_as ks_driver_missing ks_resolver_shim);

# How many times longer than usual things take: ten under Valgrind
# (tools/suites.sh sets KS_VALGRIND), where every server process runs tens
# of times slower.  Bounds on "at once" are multiplied by it.
sub ks_slow { return $ENV{KS_VALGRIND} ? 10 : 1; }

# A started node with kill_session preloaded and created in "postgres";
# $conf is appended to postgresql.conf.
sub ks_node
{
	my ($name, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'kill_session'\n" . ($conf // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION kill_session');
	return $node;
}

# A streaming cluster of three nodes: a primary (kill_session.node_id 1)
# and two hot standbys (2 and 3), each listening on 127.0.0.1 too.  On the
# primary, replicated to the standbys: postgres_fdw, a foreign server
# nodeN for each node, the directory kill_session_nodes, and user mappings
# for the superuser (no password) and for the roles app and dba (their
# passwords, which TCP connections of theirs must give).  Returns the
# three nodes in order.
sub ks_cluster
{
	my $primary = PostgreSQL::Test::Cluster->new('node1');
	$primary->init(allows_streaming => 1);
	$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'kill_session'
listen_addresses = '127.0.0.1'
kill_session.node_id = 1
} . ($ENV{KS_VALGRIND} ? "kill_session.node_timeout = 60s\n" : ''));
	my $hba = slurp_file($primary->data_dir . '/pg_hba.conf');
	open(my $fh, '>', $primary->data_dir . '/pg_hba.conf') or die;
	print $fh "host all app,dba,nopw 127.0.0.1/32 scram-sha-256\n$hba";
	close $fh;
	$primary->start;
	$primary->safe_psql('postgres', q{
		CREATE EXTENSION kill_session;
		CREATE EXTENSION postgres_fdw;
		CREATE ROLE app LOGIN PASSWORD 'app-secret';
		CREATE ROLE dba LOGIN PASSWORD 'dba-secret';
		CREATE ROLE nopw LOGIN PASSWORD 'nopw-secret';
	});
	$primary->backup('streaming');
	my @nodes = ($primary);
	for my $n (2, 3)
	{
		my $standby = PostgreSQL::Test::Cluster->new("node$n");
		$standby->init_from_backup($primary, 'streaming', has_streaming => 1);
		$standby->append_conf('postgresql.conf', "kill_session.node_id = $n\n");
		$standby->start;
		push @nodes, $standby;
	}
	for my $n (1 .. 3)
	{
		my $port = $nodes[ $n - 1 ]->port;
		$primary->safe_psql('postgres', qq{
			CREATE SERVER node$n FOREIGN DATA WRAPPER postgres_fdw
				OPTIONS (host '127.0.0.1', port '$port', dbname 'postgres');
			CREATE USER MAPPING FOR CURRENT_USER SERVER node$n;
			CREATE USER MAPPING FOR app SERVER node$n
				OPTIONS (user 'app', password 'app-secret');
			CREATE USER MAPPING FOR dba SERVER node$n
				OPTIONS (user 'dba', password 'dba-secret');
			CREATE USER MAPPING FOR nopw SERVER node$n OPTIONS (user 'nopw');
			GRANT USAGE ON FOREIGN SERVER node$n TO app, dba, nopw;
			INSERT INTO kill_session_nodes VALUES ($n, 'node$n');
		});
	}
	$primary->wait_for_catchup($_, 'replay', $primary->lsn('insert'))
	  for @nodes[ 1, 2 ];
	return @nodes;
}

# The client drivers the tests run, and how each is found: a command that
# succeeds only where the driver can be loaded.  Node.js finds its
# packages through NODE_PATH (KS_NODE_PATH, where tools/test.sh installs
# them from npm) or its own global paths.
my %ks_drivers = (
	'psycopg 3' => [ '/usr/bin/python3', '-c', 'import psycopg' ],
	'psycopg2' => [ '/usr/bin/python3', '-c', 'import psycopg2' ],
	'pgJDBC' => [ 'sh', '-c', 'command -v java >/dev/null && test -r /usr/share/java/postgresql.jar' ],
	'node-postgres' => [ 'node', '-e', 'require("pg")' ],
	'postgres.js' => [ 'node', '-e', 'require("postgres")' ]);

# Why $driver cannot run here, or undef if it can.  A test skips what needs
# a missing driver, as PostgreSQL's own tests skip what PG_TEST_EXTRA does
# not enable; with KS_REQUIRE_DRIVERS set (tools/test.sh sets it), a
# missing driver is a failed test instead, so such a run has run them all.
sub ks_driver_missing
{
	my ($driver) = @_;
	local $ENV{NODE_PATH} = $ENV{KS_NODE_PATH} if $ENV{KS_NODE_PATH};
	my $check = $ks_drivers{$driver} or die "unknown driver $driver";
	my ($out, $err);
	return undef if eval { IPC::Run::run($check, '>', \$out, '2>', \$err) };
	my $why = "$driver is not installed here (see doc/testing.md, Development)";
	fail("$driver is required (KS_REQUIRE_DRIVERS) but $why")
	  if $ENV{KS_REQUIRE_DRIVERS};
	return $why;
}

# A resolver shim for LD_PRELOAD, built for this run; returns its path.
# Its getaddrinfo() answers these names, and passes any other on:
#
#   slow.kill-session.test     127.0.0.1, after 5 s
#   stuck.kill-session.test    127.0.0.1, after 120 s: longer than any
#                              bound on "at once", even under Valgrind
#   two.kill-session.test      127.0.0.2 (where nothing listens), the same
#                              again, then 127.0.0.1
#   refused.kill-session.test  127.0.0.2, 127.0.0.3, 127.0.0.2: all refuse
#
# While a file fork_fails exists beside it, its fork() fails with ENOMEM in
# a backend (a process that the postmaster, where it was loaded, forked),
# as the kernel refuses one under vm.overcommit_memory = 2.
sub ks_resolver_shim
{
	my $dir = PostgreSQL::Test::Utils::tempdir;
	open(my $src, '>', "$dir/slowdns.c") or die;
	print $src "#define FORK_FAILS \"$dir/fork_fails\"\n";
	print $src <<'EOF';
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>

/* The process that loaded the shim: the postmaster, not one it forked. */
static pid_t loaded_by;

__attribute__((constructor)) static void
remember(void)
{
	loaded_by = getpid();
}

pid_t
fork(void)
{
	static pid_t (*real) (void);

	if (real == NULL)
		real = (pid_t (*) (void)) dlsym(RTLD_NEXT, "fork");
	if (getpid() != loaded_by && access(FORK_FAILS, F_OK) == 0)
	{
		errno = ENOMEM;
		return -1;
	}
	return real();
}

typedef int (*gai_fn) (const char *, const char *, const struct addrinfo *,
					   struct addrinfo **);

/* The answers for addrs, one after the other, as one list. */
static int
chain(gai_fn real, const char *const *addrs, const char *service,
	  const struct addrinfo *hints, struct addrinfo **res)
{
	struct addrinfo **tail = res;
	int			rc;

	*res = NULL;
	for (; *addrs != NULL; addrs++)
	{
		if ((rc = real(*addrs, service, hints, tail)) != 0)
		{
			if (*res != NULL)
				freeaddrinfo(*res);
			*res = NULL;
			return rc;
		}
		while (*tail != NULL)
			tail = &(*tail)->ai_next;
	}
	return 0;
}

int
getaddrinfo(const char *node, const char *service,
			const struct addrinfo *hints, struct addrinfo **res)
{
	static gai_fn real;
	static const char *const two[] = {"127.0.0.2", "127.0.0.2", "127.0.0.1", NULL};
	static const char *const refused[] = {"127.0.0.2", "127.0.0.3", "127.0.0.2", NULL};

	if (real == NULL)
		real = (gai_fn) dlsym(RTLD_NEXT, "getaddrinfo");
	if (node != NULL && strcmp(node, "slow.kill-session.test") == 0)
	{
		sleep(5);
		node = "127.0.0.1";
	}
	if (node != NULL && strcmp(node, "stuck.kill-session.test") == 0)
	{
		sleep(120);
		node = "127.0.0.1";
	}
	if (node != NULL && strcmp(node, "two.kill-session.test") == 0)
		return chain(real, two, service, hints, res);
	if (node != NULL && strcmp(node, "refused.kill-session.test") == 0)
		return chain(real, refused, service, hints, res);
	return real(node, service, hints, res);
}
EOF
	close $src;
	system('cc', '-shared', '-fPIC', '-o', "$dir/slowdns.so", "$dir/slowdns.c",
		'-ldl') == 0
	  or die 'could not build the resolver shim';
	return "$dir/slowdns.so";
}

# A session of role app on $node over the wire (KsWire), and its ID.
sub ks_victim
{
	my ($node) = @_;
	my $w = KsWire->connect($node, user => 'app');
	return ($w, $w->session_id);
}

# psql's stdout and stderr for $sql in database postgres of $node as
# $user, verbose and with every CONTEXT.
sub ks_run_as
{
	my ($node, $user, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\n\\set SHOW_CONTEXT always\n$sql",
		extra_params => [ '-U', $user ]);
	return ($out, $err);
}

# True ('t') when the registry lists exactly the client backends that
# pg_stat_activity lists.
sub ks_registry_query
{
	return q{
		SELECT count(*) = 0
		FROM processlist p
		FULL JOIN (SELECT * FROM pg_stat_activity
		           WHERE backend_type = 'client backend') a USING (pid)
		WHERE p.pid IS NULL OR a.pid IS NULL};
}

# pgbouncer in front of $node's database "postgres", on a free port of
# 127.0.0.1, pool size 1, trusting @users: { port, stop => sub }.
sub ks_pgbouncer
{
	my ($node, $mode, @users) = @_;
	my $dir = $node->basedir . "/pgbouncer_$mode";
	mkdir $dir;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	open(my $fh, '>', "$dir/pgbouncer.ini") or die;
	print $fh <<"EOF";
[databases]
postgres = host=${\ $node->host} port=${\ $node->port} dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = $mode
default_pool_size = 1
max_client_conn = 20
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
	close $fh;
	open($fh, '>', "$dir/users.txt") or die;
	print $fh qq{"$_" ""\n} for @users;
	close $fh;
	system('/usr/sbin/pgbouncer', '-d', "$dir/pgbouncer.ini") == 0
	  or die "pgbouncer did not start";
	# Wait until it listens.
	for (1 .. 100)
	{
		my $up = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
			PeerPort => $port, Proto => 'tcp');
		if ($up) { close $up; last; }
		usleep(50_000);
	}
	return {
		port => $port,
		stop => sub {
			my $pid = slurp_file("$dir/pgbouncer.pid");
			chomp $pid;
			kill 'TERM', $pid;
		} };
}

1;
