# Forwarding against a hostile neighbour, on the streaming cluster of
# t/013: each attack that crossed a trust boundary, turned around.
#
# - only the extension's own object, in its own database, ever runs on a
#   node (a trojan in another database never runs: 55000);
# - options come from their place whatever the wrapper (a permissive
#   wrapper's user mapping neither redirects nor connects);
# - a node's server belongs to a superuser or the directory's owner;
# - with sslmode verify-full and channel_binding require, a fake node
#   never receives a password, and the real TLS nodes still answer;
# - the caller needs the privilege on its own node, even with a PUBLIC
#   mapping to a privileged role, and the cluster list hides what the
#   caller may not see;
# - both nodes log each forwarded action, and the ended session's DETAIL
#   names the origin;
# - the timeouts work at their maxima, a slow resolver is bounded and
#   cancellable, a plain PostgreSQL is 55000, a fake node that answers the
#   check gets no row of another node's ID into the cluster list, a call
#   whose answer is lost once it was sent is 08007 (unknown, and NULL in
#   kill_sessions), and on a node the HINT for an ID without its node says
#   so.

use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use IO::Socket::INET;
use POSIX ();
use FindBin;
use lib $FindBin::RealBin;
use KsNode;
use KsWire;
use KsTls;

my @nodes = ks_cluster();
my ($n1, $n2, $n3) = @nodes;
my $END = [ 'E:FATAL:57P01', 'EOF' ];

sub refused { return (ks_run_as(@_))[1]; }

# What a kill of session $id by $role on node 1 says when, in that
# transaction only, the directory names server $server for node 3 ($setup
# runs first).
sub through
{
	my ($server, $role, $id, $setup) = @_;
	return refused($n1, 'postgres', qq{
	BEGIN;
	${\ ($setup // '')}
	UPDATE kill_session_nodes SET server_name = '$server' WHERE node_id = 3;
	${\ ($role ? "SET ROLE $role;" : '')}
	SELECT kill_session('$id');});
}

# The processes below $node's backends: a resolver left behind shows here.
sub grandchildren
{
	my ($node) = @_;
	my $pm = slurp_file($node->data_dir . '/postmaster.pid') =~ /^(\d+)/ ? $1 : die;
	my %parent;
	for my $status (glob '/proc/[0-9]*/status')
	{
		open(my $fh, '<', $status) or next;
		my $text = do { local $/; <$fh> };
		close $fh;
		my ($pid) = $status =~ m{/proc/(\d+)/};
		$parent{$pid} = $1 if $text =~ /^PPid:\s+(\d+)/m;
	}
	my %child = map { $_ => 1 } grep { $parent{$_} == $pm } keys %parent;
	return grep { $child{ $parent{$_} } } keys %parent;
}

$n1->safe_psql('postgres', q{
	GRANT ALTER SYSTEM ON PARAMETER kill_session.kill TO dba, nopw;
	CREATE ROLE outsider LOGIN;
	CREATE ROLE delegate;
	GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO delegate;
	GRANT USAGE ON FOREIGN SERVER node3 TO outsider;
	CREATE DATABASE other;
});
$n1->safe_psql('other', q{
	CREATE TABLE trojan_ran (what text);
	GRANT INSERT ON trojan_ran TO PUBLIC;
	GRANT CREATE ON SCHEMA public TO PUBLIC;
});
# An ordinary role's trojans in database "other", where the extension is
# not: each would record that it ran and make her a superuser, whatever
# search_path the call sets.  A new connection sends the call in the same
# pipeline as the identity check, so only the node's own check (its error
# ends the pipeline) keeps them from running.
$n1->safe_psql('other', q{
	CREATE FUNCTION public.kill_session(text, boolean) RETURNS boolean
	LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.trojan_ran VALUES ('kill_session');
		ALTER ROLE app SUPERUSER;
		RETURN true;
	END $$;
	CREATE FUNCTION public.trojan_list() RETURNS TABLE (id bigint, "user" text,
		host text, db text, command text, "time" integer, state text,
		info text, pid integer)
	LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.trojan_ran VALUES ('processlist');
		ALTER ROLE app CREATEROLE;
		RETURN;
	END $$;
	CREATE VIEW public.processlist AS SELECT * FROM public.trojan_list();
}, extra_params => [ '-U', 'app' ]);
$n1->wait_for_catchup($_, 'replay', $n1->lsn('insert')) for $n2, $n3;

# -- Only the extension's own objects, in its own database -----------------

$n1->safe_psql('postgres', q{ALTER SERVER node1 OPTIONS (SET dbname 'other')});
$n1->wait_for_catchup($n2, 'replay', $n1->lsn('insert'));
my ($v, $id) = ks_victim($n1);
like(refused($n2, 'postgres', "SELECT kill_session('$id')"),
	qr/ERROR:  55000: foreign server "node1" of node 1 connects to database "other", not "postgres"\nDETAIL:  A call runs only in the database of the extension that makes it\.\nHINT:  ALTER SERVER node1 OPTIONS \(SET dbname 'postgres'\);/,
	'a server naming another database: 55000, naming both');
my ($out, $err) = ks_run_as($n2, 'postgres',
	'SELECT count(*) FROM cluster_processlist WHERE node = 1');
is($out, '0', 'the cluster list leaves that node out');
like($err, qr/WARNING:  55000: foreign server "node1" of node 1 connects to database "other"/,
	'with a WARNING');
is($n1->safe_psql('other', 'SELECT count(*) FROM trojan_ran'), '0',
	'neither trojan ran');
is($n1->safe_psql('postgres',
		"SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = 'app'"),
	'f', 'and the ordinary role gained nothing');
is($v->value('SELECT 1'), '1', 'the session lives on');
$n1->safe_psql('postgres', q{ALTER SERVER node1 OPTIONS (SET dbname 'postgres')});
$n1->wait_for_catchup($n2, 'replay', $n1->lsn('insert'));

# The extension in another schema here than there: the node does not have
# the object this server would call.
($v, $id) = ks_victim($n3);
like(refused($n1, 'postgres', qq{
	BEGIN;
	CREATE SCHEMA moved;
	ALTER EXTENSION kill_session SET SCHEMA moved;
	SELECT moved.kill_session('$id');}),
	qr/ERROR:  55000: node 3 does not have this extension's function moved\.kill_session\(pg_catalog\.text,boolean,pg_catalog\.text\)\nDETAIL:  The node has no such object\./,
	'an object the node does not have as this extension\'s: 55000');
is($v->value('SELECT 2'), '2', 'the session lives on');

# -- Options in their place, whatever the wrapper ---------------------------

my $n3_port = $n3->port;
my $n3_host = $n3->host;
$n1->safe_psql('postgres', qq{
	CREATE FUNCTION permissive_validator(text[], oid) RETURNS void
		LANGUAGE plpgsql AS 'BEGIN END';
	CREATE FOREIGN DATA WRAPPER permissive VALIDATOR permissive_validator;
	CREATE SERVER loose FOREIGN DATA WRAPPER permissive
		OPTIONS (host '127.0.0.1', port '$n3_port', dbname 'postgres');
	GRANT USAGE ON FOREIGN SERVER loose TO dba;
	CREATE USER MAPPING FOR postgres SERVER loose;
});
# A role with the privilege writes her own mapping there, as the wrapper
# lets her: to the server's operating system user, through its socket.
$n1->safe_psql('postgres', qq{
	CREATE USER MAPPING FOR dba SERVER loose
		OPTIONS (user 'postgres', host '$n3_host', password_required 'false')},
	extra_params => [ '-U', 'dba' ]);
like(through('loose', 'dba', $id),
	qr/ERROR:  HV00D: option "host" is not allowed in a user mapping of node 3's foreign server "loose"/,
	'a permissive wrapper: her own mapping cannot redirect the call');
$n1->safe_psql('postgres', q{
	ALTER USER MAPPING FOR dba SERVER loose OPTIONS (DROP host)},
	extra_params => [ '-U', 'dba' ]);
like(through('loose', 'dba', $id),
	qr/ERROR:  2F003: password is required\nDETAIL:  Non-superusers must provide a password in the user mapping\./,
	'nor connect without a password: password_required counts only under postgres_fdw\'s validator');
$n1->safe_psql('postgres', qq{
	ALTER USER MAPPING FOR dba SERVER loose
		OPTIONS (SET user 'dba', ADD password 'dba-secret', ADD sslkey '/etc/ssl/private/server.key')},
	extra_params => [ '-U', 'dba' ]);
like(through('loose', 'dba', $id),
	qr/ERROR:  HV00D: option "sslkey" is not allowed in a user mapping of node 3's foreign server "loose"/,
	'nor name a key file of this server: sslkey only in a superuser\'s mapping');
like(through('loose', undef, $id, q{ALTER SERVER loose OPTIONS (ADD user 'postgres');}),
	qr/ERROR:  HV00D: option "user" is not allowed in node 3's foreign server "loose"/,
	'the user belongs in a user mapping, not the server');
is($v->value('SELECT 3'), '3', 'the session lives on');

# -- Who is called is who the directory's owner chose -------------------------

like(refused($n1, 'postgres', qq{
	BEGIN;
	ALTER SERVER node3 OWNER TO delegate;
	SELECT kill_session('$id');}),
	qr/ERROR:  42501: foreign server "node3" of node 3 is owned by role "delegate"\nDETAIL:  A node's server must be owned by a superuser or by the owner of kill_session_nodes, role "postgres"\./,
	'a server owned by a role that is not a superuser: 42501, naming it');
is($v->value('SELECT 4'), '4', 'the session lives on');

# -- TLS: a fake node never receives a password --------------------------------

# A CA, and a certificate of 127.0.0.1 for the nodes, made for this run.
my $tls = PostgreSQL::Test::Utils::tempdir;
ks_make_certs($tls);
for my $node (@nodes)
{
	$node->append_conf('postgresql.conf', qq{
ssl = on
ssl_cert_file = '$tls/node.crt'
ssl_key_file = '$tls/node.key'
});
	$node->reload;
}
# The fake: it answers a TLS request with "no", and asks for the password
# in clear text; whatever it is sent is kept.
my $fake = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	Listen => 5, ReuseAddr => 1) or die "fake node: $!";
my $fake_port = $fake->sockport;
my $fake_got = "$tls/fake_received";
# A fake is a child of this script: it must not run the script's END
# blocks or signal handlers (which stop every node), so it ends with
# POSIX::_exit and is killed with SIGKILL.
my $fake_pid = fork();
if ($fake_pid == 0)
{
	while (my $c = $fake->accept)
	{
		my $got = '';
		for (1 .. 3)
		{
			my $n = sysread($c, my $buf, 8192);
			last unless $n;
			$got .= $buf;
			if ($buf =~ /^\0\0\0\x08\x04\xd2\x16[\x2f\x30]/)
			{
				syswrite($c, 'N');	# SSL or GSS encryption: not here
			}
			else
			{
				syswrite($c, pack('a N N', 'R', 8, 3));	# clear-text password
			}
		}
		open(my $fh, '>>', $fake_got) or die;
		print $fh $got;
		close $fh;
		close $c;
	}
	POSIX::_exit(0);
}
close $fake;

my $tls_options = "sslmode 'verify-full', sslrootcert '$tls/ca.crt', channel_binding 'require'";
$n1->safe_psql('postgres', qq{
	CREATE SERVER fake FOREIGN DATA WRAPPER postgres_fdw
		OPTIONS (host '127.0.0.1', port '$fake_port', dbname 'postgres', $tls_options);
	CREATE USER MAPPING FOR dba SERVER fake OPTIONS (user 'dba', password 'dba-secret');
	GRANT USAGE ON FOREIGN SERVER fake TO dba;
	CREATE SERVER tls3 FOREIGN DATA WRAPPER postgres_fdw
		OPTIONS (host '127.0.0.1', port '$n3_port', dbname 'postgres', $tls_options);
	CREATE USER MAPPING FOR dba SERVER tls3 OPTIONS (user 'dba', password 'dba-secret');
	GRANT USAGE ON FOREIGN SERVER tls3 TO dba;
});
like(through('fake', 'dba', $id),
	qr/ERROR:  08001: could not connect to node 3\nDETAIL:  .*SSL/,
	'a fake node under verify-full: the call fails');
my $received = -e $fake_got ? slurp_file($fake_got) : '';
unlike($received, qr/dba-secret/, 'and the fake never received the password');
is($n1->safe_psql('postgres', qq{
	BEGIN;
	UPDATE kill_session_nodes SET server_name = 'tls3' WHERE node_id = 3;
	SET ROLE dba;
	SELECT kill_session('$id');}),
	't', 'the real node, over TLS verified against the CA, with channel binding: killed');
is_deeply($v->trace(10), $END, 'which ends');
kill 'KILL', $fake_pid;
waitpid($fake_pid, 0);

# -- The privilege on both nodes ---------------------------------------------

($v, $id) = ks_victim($n3);
like(refused($n1, 'app', "SELECT kill_session('$id')"),
	qr/ERROR:  42501: permission denied to kill session\nDETAIL:  Only superusers and roles with the ALTER SYSTEM privilege on parameter "kill_session.kill" may kill sessions\.\nLOCATION:  [^\n]*$/,
	'a role without the privilege is refused on its own node, before any call');
$n1->safe_psql('postgres', q{
	CREATE USER MAPPING FOR PUBLIC SERVER node3
		OPTIONS (user 'dba', password 'dba-secret');
	GRANT pg_read_all_stats TO dba;
});
$n1->wait_for_catchup($_, 'replay', $n1->lsn('insert')) for $n2, $n3;
for my $call ("SELECT kill_session('$id')", "SELECT disconnect_session('$id')",
	"SELECT cancel_sql('$id')", "SELECT * FROM kill_sessions(ARRAY[$id])")
{
	like(refused($n2, 'outsider', $call),
		qr/ERROR:  42501: permission denied to (kill|disconnect|cancel SQL of) session\nDETAIL:  [^\n]*\nLOCATION:  [^\n]*$/,
		"a PUBLIC mapping to a privileged role does not lend its privilege: $call");
}
is($v->value('SELECT 5'), '5', 'the session lives on');
($out, $err) = ks_run_as($n2, 'outsider', qq{
	SELECT host IS NULL, info FROM cluster_processlist WHERE id = $id});
is($out, 't|<insufficient privilege>',
	'the cluster list hides from her what processlist would, whatever the mapped role sees');
$n1->safe_psql('postgres', q{
	DROP USER MAPPING FOR PUBLIC SERVER node3;
	REVOKE pg_read_all_stats FROM dba;
	CREATE ROLE ops LOGIN;
	GRANT ALTER SYSTEM ON PARAMETER kill_session.kill TO ops;
	GRANT USAGE ON FOREIGN SERVER node3 TO ops;
	CREATE USER MAPPING FOR ops SERVER node3 OPTIONS (user 'app', password 'app-secret');
});
$n1->wait_for_catchup($_, 'replay', $n1->lsn('insert')) for $n2, $n3;
like(refused($n2, 'ops', "SELECT kill_session('$id')"),
	qr/ERROR:  42501: permission denied to kill session\n.*CONTEXT:  node 3 \(foreign server "node3"\)/s,
	'the node checks the mapped role too: 42501 from node 3');
like(refused($n2, 'ops', "SELECT * FROM kill_sessions(ARRAY[$id])"),
	qr/WARNING:  42501: permission denied to kill session\n.*CONTEXT:  node 3/s,
	'kill_sessions passes the node\'s refusal on as a WARNING');
like(refused($n2, 'nopw', "SELECT kill_session('$id')"),
	qr/ERROR:  2F003: password is required/,
	'a non-superuser\'s user mapping needs a password, as postgres_fdw requires');
is($v->value('SELECT 6'), '6', 'the session lives on');

# -- An audit trail across nodes ---------------------------------------------

my $caller = KsWire->connect($n2, user => 'dba');
my $caller_id = $caller->session_id;
my $caller_pid = $caller->pid;
my $origin = qr/on behalf of role "dba" \(session $caller_id, pid $caller_pid\) of node 2, as node 2 reported/;
for my $case (
	[ 'kill_session', "SELECT kill_session('%s')", 'kill session', 'killed' ],
	[ 'disconnect_session', "SELECT disconnect_session('%s')", 'kill session', 'killed' ],
	[ 'disconnect_session after the transaction',
		"SELECT disconnect_session('%s', post_transaction => true)",
		'disconnect session', 'marked to disconnect after its transaction' ],
	[ 'cancel_sql', "SELECT cancel_sql('%s')", 'cancel SQL of session',
		'had its statement cancelled' ],
	[ 'kill_sessions', 'SELECT killed FROM kill_sessions(ARRAY[%s])',
		'kill sessions', 'killed' ])
{
	my ($name, $sql, $action, $done) = @$case;
	my ($w, $wid) = ks_victim($n3);
	$w->send_query('SELECT pg_sleep(60)') if $name eq 'cancel_sql';
	$n3->poll_query_until('postgres',
		"SELECT state = 'ACTIVE' FROM processlist WHERE id = $wid")
	  or die
	  if $name eq 'cancel_sql';
	my $off2 = -s $n2->logfile;
	my $off3 = -s $n3->logfile;
	is($caller->value(sprintf($sql, $wid)), 't', "$name from node 2");
	like(slurp_file($n2->logfile, $off2),
		qr/LOG:  session $caller_id \(pid $caller_pid, role "dba"\) of node 2 forwards to node 3 \(foreign server "node3"\): $action $wid\n/,
		"$name: the calling node logs who asked what of which node");
	like(slurp_file($n3->logfile, $off3),
		qr/LOG:  session $wid \(pid \d+, role "app", database "postgres"\) $done by session 3\d+ \(pid \d+, role "dba"\) $origin\n/,
		"$name: the node logs it with the origin");
	next if $name =~ /after the transaction/;
	if ($name eq 'cancel_sql')
	{
		$w->trace(10);
		like($w->last_error->{D},
			qr/^The statement of session $wid was cancelled by role "dba" \(session 3\d+\) $origin\.$/,
			'the cancelled statement\'s DETAIL names the origin');
		$w->close;
		next;
	}
	is_deeply($w->trace(10), $END, "$name: the session ends");
	like($w->last_error->{D},
		qr/^Session $wid was killed by role "dba" \(session 3\d+\) $origin\.$/,
		"$name: its DETAIL names the origin");
}
$caller->close;

# -- The origin is a claim, given at connection start only ----------------------

# Nothing that runs in a session can set it: a privileged role that tries
# to make her own kill read as another node's report is refused.
my $dba = KsWire->connect($n3, user => 'dba');
for my $set ("SET kill_session.origin = '2 1 1 postgres'",
	"SELECT set_config('kill_session.origin', '2 1 1 postgres', false)",
	'RESET kill_session.origin')
{
	my $r = $dba->query($set);
	is($r->{error}{C}, '55P02', "$set: 55P02");
	like($r->{error}{M}, qr/^parameter "kill_session\.origin" cannot be set after connection start$/,
		'cannot be set after connection start');
}
$dba->close;

# Any client can give one in its own startup packet, though: the node then
# names the session that acted first and prints the origin as its claim.
# The role part is printed escaped, so that a quote and a newline forge
# neither the line nor a line of their own on the ended session's client.
my $forger = KsWire->connect($n3, user => 'dba',
	options => "-c kill_session.origin=2\\ 123\\ 456\\ x\"\\\nFATAL:\\ \\ forged");
my $forger_id = $forger->session_id;
my $forger_pid = $forger->pid;
is($forger->value('SHOW kill_session.origin'), "2 123 456 x\"\nFATAL:  forged",
	'an origin with a quote and a newline in its role part is taken as given');
my ($victim_out, $victim_err) = ('', '');
my $victim = IPC::Run::start(
	[ 'psql', '-X', '-d', $n3->connstr('postgres') . ' user=app application_name=forged_victim',
		'-c', 'SELECT pg_sleep(60)' ],
	'<', \undef, '>', \$victim_out, '2>', \$victim_err);
$n3->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'forged_victim' AND wait_event = 'PgSleep'")
  or die;
my $victim_id = $n3->safe_psql('postgres',
	"SELECT id FROM processlist WHERE pid = (SELECT pid FROM pg_stat_activity WHERE application_name = 'forged_victim')");
my $off3 = -s $n3->logfile;
is($forger->value("SELECT kill_session('$victim_id')"), 't',
	'a session with a claimed origin kills');
$victim->finish;
my $claim = qr/on behalf of role "x\\"\\nFATAL:  forged" \(session 123, pid 456\) of node 2, as the calling session claimed/;
like($victim_err,
	qr/^FATAL:  terminating connection due to administrator command\nDETAIL:  Session $victim_id was killed by role "dba" \(session $forger_id\) $claim\.\n/m,
	'the psql client is told who really killed it, and the origin as that session\'s claim');
unlike($victim_err, qr/^FATAL:  forged/m, 'and sees no forged line');
my $log3 = slurp_file($n3->logfile, $off3);
like($log3,
	qr/LOG:  session $victim_id \(pid \d+, role "app", database "postgres"\) killed by session $forger_id \(pid $forger_pid, role "dba"\) $claim\n/,
	'the node logs the session that acted, then the claim');
unlike($log3, qr/^\s*FATAL:  forged/m, 'the log has no forged line, indented or not');
$forger->close;

# Only a role's own mapping vouches: a PUBLIC mapping's user is shared by
# every role that may use the server, so a login as that user claiming a
# role without a mapping of its own is printed as a claim.
$n1->safe_psql('postgres', q{
	CREATE ROLE pubrole;
	CREATE USER MAPPING FOR PUBLIC SERVER node3 OPTIONS (user 'dba', password 'dba-secret');
});
$n1->wait_for_catchup($n3, 'replay', $n1->lsn('insert'));
my $pub = KsWire->connect($n3, user => 'dba',
	options => '-c kill_session.origin=1\\ 123\\ 456\\ pubrole');
my $pub_victim = KsWire->connect($n3, user => 'app');
my $pub_victim_id = $pub_victim->session_id;
$off3 = -s $n3->logfile;
is($pub->value("SELECT kill_session('$pub_victim_id')"), 't',
	'a login as a PUBLIC mapping\'s user kills, claiming a role with no mapping');
like(slurp_file($n3->logfile, $off3),
	qr/LOG:  session $pub_victim_id \(pid \d+, role "app", database "postgres"\) killed by session \d+ \(pid \d+, role "dba"\) on behalf of role "pubrole" \(session 123, pid 456\) of node 1, as the calling session claimed\n/,
	'the node prints that origin as a claim, not as the node\'s report');
$pub->close;
$pub_victim->close;
$n1->safe_psql('postgres', q{
	DROP USER MAPPING FOR PUBLIC SERVER node3;
	DROP ROLE pubrole;
});
$n1->wait_for_catchup($n3, 'replay', $n1->lsn('insert'));

# An origin not in the node's form is refused at connection start (22023).
my $bad = KsWire->connect($n3, user => 'dba', nowait => 1,
	options => '-c kill_session.origin=postgres');
my $m;
do { $m = $bad->read_message(30) } until !defined $m || $m->{type} eq 'E' || $m->{type} eq 'Z';
is($m && $m->{type} eq 'E' ? $m->{fields}{C} : 'no error', '22023',
	'an origin that is not "node session_id pid role": 22023 at connection start');
$bad->close;

# An origin is a claim from anywhere: a role part that is no valid text in
# this database's encoding (a UTF-8 name, here in an EUC_JP database) is
# taken, not refused at connection start as if it were malformed.
$n1->safe_psql('postgres', q{CREATE DATABASE euc ENCODING 'EUC_JP' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'});
my $euc = KsWire->connect($n1, user => 'dba', dbname => 'euc', nowait => 1,
	options => "-c kill_session.origin=2\\ 123\\ 456\\ \xc3\xa0dmin");
do { $m = $euc->read_message(30) } until !defined $m || $m->{type} eq 'E' || $m->{type} eq 'Z';
is($m && $m->{type} eq 'E' ? "$m->{fields}{C}: $m->{fields}{M}" : ($m ? 'ready' : 'no answer'),
	'ready', 'an origin whose role part is no text in the node database\'s encoding: the connection starts');
$euc->close;
$n1->safe_psql('postgres', 'DROP DATABASE euc');

# A node's NOTICEs reach the caller as the node sent them, one by one, each
# naming the node, after libpq has handed them over.
my @missing = map { 30_000_000_000 + 9_000_000 + $_ } (2, 1, 3);
(undef, $err) = ks_run_as($n2, 'postgres',
	"SELECT id, killed FROM kill_sessions(ARRAY[" . join(',', @missing) . '])');
like($err,
	qr/NOTICE:  42704: session ID $missing[0] does not exist\nCONTEXT:  node 3 \(foreign server "node3"\)\nLOCATION:  [^\n]*\n[^\n]*NOTICE:  42704: session ID $missing[1] does not exist\nCONTEXT:  node 3 \(foreign server "node3"\)\nLOCATION:  [^\n]*\n[^\n]*NOTICE:  42704: session ID $missing[2] does not exist\nCONTEXT:  node 3 \(foreign server "node3"\)\n/,
	'the node\'s NOTICEs reach the caller in the order the node sent them');

# -- Every bound holds ----------------------------------------------------------

($v, $id) = ks_victim($n3);
($out, $err) = ks_run_as($n1, 'postgres', qq{
	SET kill_session.wait_timeout = 2147483647;
	SET kill_session.node_timeout = 2147483647;
	SELECT count(DISTINCT node) FROM cluster_processlist;
	SELECT kill_session('$id');});
is($out, "3\nt", 'both timeouts at their maxima: the list and the kill work');
unlike($err, qr/WARNING|ERROR/, 'with no warning');
is_deeply($v->trace(10), $END, 'the session ends');

# A resolver that takes 5 s for one name, on node 2.
my $shim = ks_resolver_shim();
{
	local $ENV{LD_PRELOAD} = $shim;
	$n2->restart;
}
$n1->safe_psql('postgres', qq{
	CREATE SERVER slow3 FOREIGN DATA WRAPPER postgres_fdw
		OPTIONS (host 'slow.kill-session.test', port '$n3_port', dbname 'postgres');
	CREATE USER MAPPING FOR postgres SERVER slow3;
	UPDATE kill_session_nodes SET server_name = 'slow3' WHERE node_id = 3;
});
$n1->wait_for_catchup($n2, 'replay', $n1->lsn('insert'));
($v, $id) = ks_victim($n3);
my $t0 = time();
like(refused($n2, 'postgres',
		"SET kill_session.node_timeout = '500ms'; SELECT kill_session('$id')"),
	qr/ERROR:  08001: could not reach node 3\nDETAIL:  It did not connect and say who it is within kill_session.node_timeout \(500 ms\)/,
	'a resolver slower than node_timeout: could not reach node 3');
my $elapsed = time() - $t0;
cmp_ok($elapsed, '<', 0.5 + 2 * ks_slow(), "within node_timeout (${elapsed}s)");
$t0 = time();
like(refused($n2, 'postgres',
		"SET statement_timeout = '1s'; SELECT kill_session('$id')"),
	qr/ERROR:  57014: canceling statement due to statement timeout/,
	'a cancel ends the wait for the resolver');
$elapsed = time() - $t0;
cmp_ok($elapsed, '<', 1 + 2 * ks_slow(), "at once (${elapsed}s)");
is(scalar(grandchildren($n2)), 0, 'no resolver is left behind');

# A session whose calls are cancelled in the middle of their wait, time
# after time, keeps no descriptor of them: no epoll set, no socket, no pipe.
my $waiter = KsWire->connect($n2);
$waiter->value("SET statement_timeout = '300ms'");
sub descriptors
{
	my ($pid) = @_;
	my ($all, $epoll) = (0, 0);
	opendir(my $dh, "/proc/$pid/fd") or die "cannot read /proc/$pid/fd: $!";
	for my $fd (grep { /^\d+$/ } readdir($dh))
	{
		my $target = readlink("/proc/$pid/fd/$fd") // next;
		$all++;
		$epoll++ if $target =~ /eventpoll/;
	}
	closedir($dh);
	return ($all, $epoll);
}
# One call first, for what a session opens once (the catalogs' files).
$waiter->query("SELECT kill_session('$id')");
my ($fds_before, $epoll_before) = descriptors($waiter->pid);
my $timeouts = 0;
for (1 .. 10)
{
	my $r = $waiter->query("SELECT kill_session('$id')");
	$timeouts++ if ($r->{error}{C} // '') eq '57014';
}
is($timeouts, 10, 'ten calls cancelled by statement_timeout while they wait');
my ($fds_after, $epoll_after) = descriptors($waiter->pid);
is($epoll_after, $epoll_before, "no epoll descriptor left behind ($epoll_after)");
is($fds_after, $fds_before, "no descriptor at all left behind ($fds_after)");
$waiter->close;
$t0 = time();
is($n2->safe_psql('postgres',
		"SET kill_session.node_timeout = '30s'; SELECT kill_session('$id')"),
	't', 'a resolver that answers in time: the call goes on, to the name\'s address');
cmp_ok(time() - $t0, '>=', 4.5, 'after the resolver\'s 5 s');
is_deeply($v->trace(10), $END, 'the session ends');
$n1->safe_psql('postgres',
	q{UPDATE kill_session_nodes SET server_name = 'node3' WHERE node_id = 3});
$n1->wait_for_catchup($n2, 'replay', $n1->lsn('insert'));

# -- Right answers ----------------------------------------------------------------

# A PostgreSQL without kill_session.
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->append_conf('postgresql.conf', "listen_addresses = '127.0.0.1'\n");
$plain->start;
my $plain_port = $plain->port;
($v, $id) = ks_victim($n3);
like(through('plain', undef, $id, qq{
		CREATE SERVER plain FOREIGN DATA WRAPPER postgres_fdw
			OPTIONS (host '127.0.0.1', port '$plain_port', dbname 'postgres');
		CREATE USER MAPPING FOR CURRENT_USER SERVER plain;}),
	qr/ERROR:  55000: foreign server "plain" of node 3 does not run kill_session\n/,
	'a server without kill_session: 55000, not 42704');
$plain->stop;

# A node that lies: a fake PostgreSQL that answers the identity check as
# node 3 of this cluster would (every value it needs is public) and lists
# a session whose ID carries another node.  Its rows are left out.
my $sysid = $n1->safe_psql('postgres',
	'SELECT system_identifier FROM pg_control_system()');
my $view_oid = $n1->safe_psql('postgres', q{SELECT 'processlist'::regclass::oid});
my $liar = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	Listen => 5, ReuseAddr => 1) or die "fake node: $!";
my $liar_port = $liar->sockport;
my $liar_pid = fork();
if ($liar_pid == 0)
{
	my $msg = sub {
		my ($type, $body) = @_;
		return $type . pack('N', 4 + length $body) . $body;
	};
	my $rows = sub {
		my ($names, @rows) = @_;
		my $out = $msg->('1', '') . $msg->('2', '');
		$out .= $msg->('T', pack('n', scalar @$names)
			  . join('', map { "$_\0" . pack('N n N n N n', 0, 0, 25, -1, -1, 0) } @$names));
		for my $r (@rows)
		{
			$out .= $msg->('D', pack('n', scalar @$r)
				  . join('', map { defined $_ ? pack('N', length $_) . $_ : pack('N', 0xFFFFFFFF) } @$r));
		}
		return $out . $msg->('C', 'SELECT ' . scalar(@rows) . "\0");
	};
	while (my $c = $liar->accept)
	{
		my $buf = '';
		my $started = 0;
		my $sql = '';
		while (1)
		{
			my $n = sysread($c, my $chunk, 65536);
			last unless $n;
			$buf .= $chunk;
			if (!$started)
			{
				next if length $buf < 8;
				my ($len, $code) = unpack('N N', $buf);
				next if length $buf < $len;
				substr($buf, 0, $len) = '';
				if ($code == 80877103 || $code == 80877104)
				{
					syswrite($c, 'N');
					next;
				}
				$started = 1;
				syswrite($c, $msg->('R', pack('N', 0))
					  . join('', map { $msg->('S', "$_->[0]\0$_->[1]\0") }
						  ([ 'server_version', '15.0' ], [ 'client_encoding', 'UTF8' ],
						   [ 'standard_conforming_strings', 'on' ], [ 'integer_datetimes', 'on' ]))
					  . $msg->('K', pack('N N', 4242, 4242)) . $msg->('Z', 'I'));
				next;
			}
			while (length $buf >= 5)
			{
				my ($type, $len) = unpack('a N', $buf);
				last if length $buf < 1 + $len;
				my $body = substr($buf, 5, $len - 4);
				substr($buf, 0, 1 + $len) = '';
				$sql = $1 if $type eq 'P' && $body =~ /^[^\0]*\0([^\0]*)\0/;
				# Each query is answered at its Execute, as one pipeline of
				# them ends at its Sync.
				syswrite($c, $msg->('Z', 'I')) if $type eq 'S';
				next unless $type eq 'E';
				if ($sql =~ /set_config\('search_path'/)
				{
					syswrite($c, $rows->([ map { "c$_" } 1 .. 6 ],
						[ 'pg_catalog', '3', $sysid, 'postgres', $view_oid, '5000' ]));
				}
				elsif ($sql =~ /pg_control_system/)
				{
					syswrite($c, $rows->([ 'case' ], [ 't' ]));
				}
				else
				{
					syswrite($c, $rows->([ qw(id user host db command time state info pid) ],
						[ '22222222222', 'app', undef, 'postgres', 'Sleep', '1', 'SLEEP', undef, '1' ],
						[ '33333333333', 'app', undef, 'postgres', 'Sleep', '1', 'SLEEP', undef, '2' ]));
				}
			}
		}
		close $c;
	}
	POSIX::_exit(0);
}
close $liar;
($out, $err) = ks_run_as($n1, 'postgres', qq{
	BEGIN;
	CREATE SERVER liar FOREIGN DATA WRAPPER postgres_fdw
		OPTIONS (host '127.0.0.1', port '$liar_port', dbname 'postgres');
	CREATE USER MAPPING FOR CURRENT_USER SERVER liar;
	UPDATE kill_session_nodes SET server_name = 'liar' WHERE node_id = 3;
	SELECT id FROM cluster_processlist WHERE node = 3;});
is($out, '33333333333',
	'a node that answers the check but lists another node\'s ID: that row is left out');
like($err,
	qr/WARNING:  08P01: node 3 listed 1 session whose ID does not carry that node\nDETAIL:  Those rows are left out\.\nCONTEXT:  node 3 \(foreign server "liar"\)/,
	'with a WARNING naming the node');
kill 'KILL', $liar_pid;
waitpid($liar_pid, 0);

# The node's session ends in the middle of a call, after the call was sent:
# the node may have acted or not, so the outcome is unknown (08007), never
# the node's 57P01, which drivers and poolers would take for the end of
# their own connection.  (The session is stopped, so the node's kill waits
# for it.)
my $forwarding = q{
	SELECT pid FROM pg_stat_activity
	WHERE application_name = 'kill_session' AND state = 'active'};
sub forwarding_pid
{
	$n3->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($forwarding) f")
	  or die;
	return $n3->safe_psql('postgres', $forwarding);
}
my $unknown = qr/^cluster_processlist shows whether the session is still there; node 3's log says what was done\.$/;
my $victim_pid = $v->pid;
kill 'STOP', $victim_pid;
my $caller1 = KsWire->connect($n1);
# The node's call waits for the stopped session until its connection is
# ended here, however slow the machine.
$caller1->query(q{SET kill_session.wait_timeout = '600s'});
$caller1->send_query("SELECT kill_session('$id')");
$n3->safe_psql('postgres', "SELECT pg_terminate_backend(${\ forwarding_pid()})");
is_deeply($caller1->trace(30), [ 'T', 'E:ERROR:08007', 'Z' ],
	'the node\'s FATAL after the call was sent: 08007 here, not the node\'s 57P01');
is($caller1->last_error->{M}, 'the outcome on node 3 is unknown',
	'the outcome on node 3 is unknown');
like($caller1->last_error->{D},
	qr/^The connection to node 3 was lost after the call was sent: the node said: FATAL: 57P01: terminating connection due to administrator command/,
	'with the node\'s own words in the DETAIL');
like($caller1->last_error->{H}, $unknown, 'and where to look');
is($caller1->value('SELECT 7'), '7', 'the caller\'s own connection goes on');
kill 'CONT', $victim_pid;
is_deeply($v->trace(10), $END,
	'the session, marked before, ends once it runs: the kill had happened');

# kill_sessions: that node's rows are NULL, unknown, with the WARNING.
($v, $id) = ks_victim($n3);
$victim_pid = $v->pid;
kill 'STOP', $victim_pid;
$caller1->send_query("SELECT id, killed FROM kill_sessions(ARRAY[$id])");
$n3->safe_psql('postgres', "SELECT pg_terminate_backend(${\ forwarding_pid()})");
my $r = $caller1->read_result(30);
is_deeply($r->{rows}, [ [ $id, undef ] ], 'kill_sessions: the row is NULL, not false');
is(join(' ', map { "$_->{V}:$_->{C}:$_->{M}" } @{ $r->{notices} }),
	'WARNING:08007:the outcome on node 3 is unknown',
	'with a WARNING 08007');
kill 'CONT', $victim_pid;
is_deeply($v->trace(10), $END, 'and that session had been marked: it ends');

# A node that stops answering once it has the call: 08007 at node_timeout
# plus wait_timeout.  Then it goes on, and the kill happens: unknown was
# the right answer, false would have been wrong.
($v, $id) = ks_victim($n3);
my $step = 1000 * ks_slow();
$caller1->query(qq{SET kill_session.node_timeout = '${step}ms'});
$caller1->query(qq{SET kill_session.wait_timeout = '${step}ms'});
$victim_pid = $v->pid;
kill 'STOP', $victim_pid;
$caller1->send_query("SELECT kill_session('$id')");
my $stuck = forwarding_pid();
kill 'STOP', $stuck;
$t0 = time();
is_deeply($caller1->trace(30), [ 'T', 'E:ERROR:08007', 'Z' ],
	'a node silent after the call was sent: 08007');
$elapsed = time() - $t0;
like($caller1->last_error->{D},
	qr/^Node 3 did not answer the call within kill_session.node_timeout plus kill_session.wait_timeout \(${\ (2 * $step)} ms\)\.$/,
	'once node_timeout plus wait_timeout had passed');
cmp_ok($elapsed, '<', 2 * $step / 1000 + 2 * ks_slow(), "in time (${elapsed}s)");
kill 'CONT', $stuck;
kill 'CONT', $victim_pid;
is_deeply($v->trace(10), $END, 'the node went on and killed the session');
$caller1->close;

# On a node, the HINT for an ID without its node says so.
like(refused($n2, 'postgres', "ALTER SYSTEM KILL SESSION '3274972196'"),
	qr/HINT:  On PostgreSQL run: SELECT kill_session\('session_id'\); the session ID 3274972196 carries no node, so it could be any node's: give it as SHOW PROCESSLIST lists it \(on this node, node 2, session 3274972196 is 23274972196\)\./,
	'the nodeless HINT: what is wrong, and this node\'s form');
like(refused($n2, 'postgres', "ALTER SYSTEM KILL SESSION '3274972196, 1, \@3'"),
	qr/HINT:  On PostgreSQL run: SELECT kill_session\('3274972196, 1, \@3'\);/,
	'with its node, the HINT gives the call');

$v->close;
done_testing();
