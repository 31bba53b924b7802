# The kill privilege on every supported version: PostgreSQL's ALTER SYSTEM
# privilege on parameter kill_session.kill is granted, revoked, listed and
# dumped like any parameter privilege, a dump restores into a new cluster,
# and the parameter itself can never be written anywhere.

use strict;
use warnings FATAL => 'all';
use lib 't';
use KsNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = ks_node('main');
my $major = $node->safe_psql('postgres', 'SHOW server_version_num') / 10000;
$node->safe_psql('postgres', q{
	CREATE ROLE dba LOGIN;
	CREATE ROLE oradba LOGIN;
	CREATE ROLE app LOGIN;
});

sub granted
{
	my ($n, $role) = @_;
	return $n->safe_psql('postgres',
		"SELECT has_parameter_privilege('$role', 'kill_session.kill', 'ALTER SYSTEM')");
}

# Both forms of the grant, and REVOKE.
$node->safe_psql('postgres',
	'GRANT ALTER SYSTEM ON PARAMETER kill_session.kill TO dba');
is(granted($node, 'dba'), 't', 'GRANT ALTER SYSTEM ON PARAMETER kill_session.kill');
$node->safe_psql('postgres', 'GRANT ALTER SYSTEM TO oradba');
is(granted($node, 'oradba'), 't', "Oracle's GRANT ALTER SYSTEM TO");
$node->safe_psql('postgres', 'REVOKE ALTER SYSTEM FROM oradba');
is(granted($node, 'oradba'), 'f', "Oracle's REVOKE ALTER SYSTEM FROM");
$node->safe_psql('postgres', 'GRANT ALTER SYSTEM TO oradba');

# Listed where PostgreSQL lists parameter privileges.
like($node->safe_psql('postgres',
		"SELECT paracl::text FROM pg_parameter_acl WHERE parname = 'kill_session.kill'"),
	qr/dba=A\/.*oradba=A\//, 'pg_parameter_acl holds both grants');
my $dconfig = $node->safe_psql('postgres', '\dconfig+ kill_session.kill');
like($dconfig, qr/^kill_session\.kill\|\|string\|internal\|.*^dba=A\//ms, '\dconfig+ shows the grants');

# The grantee kills; without the grant, nobody but a superuser does.
my $target = $node->background_psql('postgres', on_error_stop => 0,
	extra_params => [ '-U', 'app' ]);
my $tid = $node->safe_psql('postgres',
	"SELECT id FROM processlist WHERE pid = " . $target->query_safe('SELECT pg_backend_pid()'));
is($node->safe_psql('postgres', "SET ROLE dba; SELECT kill_session('$tid')"),
	't', 'a grantee kills a session');
$target->quit;
my ($ret, $out, $err) = $node->psql('postgres',
	"SET ROLE app; SELECT kill_session('4294967295')");
like($err, qr/permission denied to kill session/, 'without the grant: denied');

# The parameter holds nothing and cannot be written, not even by a
# superuser, so its privilege never writes postgresql.auto.conf.
is($node->safe_psql('postgres', 'SHOW kill_session.kill'), '',
	'kill_session.kill holds no setting');
($ret, $out, $err) = $node->psql('postgres',
	"ALTER SYSTEM SET kill_session.kill = 'x'");
like($err, qr/ERROR:  parameter "kill_session.kill" cannot be changed/,
	"a superuser's ALTER SYSTEM SET kill_session.kill fails");
like($err, qr/DETAIL:  It holds no setting: it names the privilege to kill sessions\./,
	'and says why');
($ret, $out, $err) = $node->psql('postgres',
	"SET ROLE dba; ALTER SYSTEM SET kill_session.kill = 'x'");
like($err, qr/cannot be changed/, "a grantee's ALTER SYSTEM SET fails too");
($ret, $out, $err) = $node->psql('postgres',
	'SET ROLE dba; ALTER SYSTEM RESET kill_session.kill');
like($err, qr/cannot be changed/, 'so does ALTER SYSTEM RESET');
($ret, $out, $err) = $node->psql('postgres',
	"SET ROLE dba; ALTER SYSTEM SET kill_session.wait_timeout = '1s'");
like($err, qr/permission denied to set parameter "kill_session.wait_timeout"/,
	'the grant gives ALTER SYSTEM on no other setting');
($ret, $out, $err) = $node->psql('postgres', "SET kill_session.kill = 'x'");
like($err, qr/cannot be changed/, 'SET kill_session.kill fails');
my $auto = slurp_file($node->data_dir . '/postgresql.auto.conf');
unlike($auto, qr/kill_session/, 'postgresql.auto.conf was never written');

# The prefix stays reserved: a mistyped name is rejected.
($ret, $out, $err) = $node->psql('postgres',
	"SET kill_session.wait_timout = '1s'");
like($err, qr/invalid configuration parameter name "kill_session.wait_timout"/,
	'a mistyped setting is rejected');
SKIP:
{
	skip 'PostgreSQL 15 accepts any custom name in GRANT ON PARAMETER', 1
	  if $major < 16;
	($ret, $out, $err) = $node->psql('postgres',
		'GRANT ALTER SYSTEM ON PARAMETER kill_session.wait_timout TO dba');
	like($err, qr/invalid configuration parameter name "kill_session.wait_timout"/,
		'GRANT on a mistyped name is rejected');
}

# pg_dumpall keeps the grants, and they restore into a new cluster.
my $globals = $node->basedir . '/globals.sql';
$node->command_ok([ 'pg_dumpall', '--globals-only', '-f', $globals,
	'-h', $node->host, '-p', $node->port ], 'pg_dumpall --globals-only');
my $dump = slurp_file($globals);
like($dump, qr/^GRANT ALTER SYSTEM ON PARAMETER "?kill_session\.kill"? TO dba;$/m,
	'the dump has the grant');
like($dump, qr/^GRANT ALTER SYSTEM ON PARAMETER "?kill_session\.kill"? TO oradba;$/m,
	"the dump has the Oracle form's grant");

my $new = ks_node('restored');
# The new cluster's own bootstrap superuser exists already.
my $restore = join("\n", grep { !/^(CREATE|ALTER) ROLE \Q${\ $new->safe_psql('postgres', 'SELECT current_user')}\E\b/ } split /\n/, $dump);
my ($rret, $rout, $rerr) = $new->psql('postgres', $restore, on_error_stop => 1);
is($rret, 0, 'the dump restores') or diag $rerr;
is(granted($new, 'dba'), 't', 'the restored cluster has the grant');
is(granted($new, 'oradba'), 't', "the restored cluster has the Oracle form's grant");
is(granted($new, 'app'), 'f', 'and nothing more');

$new->stop;
$node->stop;
done_testing();
