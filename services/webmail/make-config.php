<?php
// Roundcube's configuration for this instance, made from the container's environment at each start and written
// to the tmpfs under /run (the image's /etc/roundcube/config.inc.php links there). Every value is checked here
// again (cattery checked overridable ones against the manifest's patterns) and written with var_export, so no
// value can end a PHP string. A bad value stops the container with exit code 64 and a line saying which.
// The PHP workers then run with an empty environment (php-fpm clear_env): des_key lives in this file only.

const RUN = '/run/cattery-webmail';
const HOST = '/^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/';
const DOMAIN = '/^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/';

function refuse(string $why): never {
    fwrite(STDERR, "cattery webmail: $why; refusing to start\n");
    exit(64);
}

function env(string $name, ?string $default = null): string {
    $v = getenv($name);
    if ($v === false || $v === '') {
        if ($default === null) refuse("$name is missing");
        return $default;
    }
    return $v;
}

function matching(string $name, string $re, ?string $default = null): string {
    $v = env($name, $default);
    if (!preg_match($re, $v)) refuse("$name does not have the expected shape");
    return $v;
}

function port(string $name, string $default): int {
    $v = (int) matching($name, '/^[1-9][0-9]{0,4}$/', $default);
    if ($v > 65535) refuse("$name is not a port number");
    return $v;
}

// implicit: TLS from the first byte (IMAPS 993, submissions 465). starttls: upgraded before anything else is said,
// and Roundcube gives up if the server does not offer it. There is no third, plain, mode.
function scheme(string $name): string {
    return matching($name, '/^(implicit|starttls)$/', 'implicit') === 'implicit' ? 'ssl' : 'tls';
}

$domain = matching('MAIL_DOMAIN', DOMAIN);
$imapHost = matching('WEBMAIL_IMAP_HOST', HOST);
$smtpHost = matching('WEBMAIL_SMTP_HOST', HOST);
$imapPort = port('WEBMAIL_IMAP_PORT', '993');
$smtpPort = port('WEBMAIL_SMTP_PORT', '465');
$lang = matching('WEBMAIL_LANGUAGE', '/^[a-z]{2,3}(?:_[A-Z]{2})?$/', 'fr_FR');
if (!is_dir("/usr/share/roundcube/program/localization/$lang")) refuse("WEBMAIL_LANGUAGE: Roundcube has no $lang translation");
// cattery refuses spaces and anything outside printable ASCII in an administrator's value (they would split a
// shell word or hide a homograph), so the association's name comes URL-encoded: an underscore or %20 for a space,
// %C3%A9 for "é" (UTF-8). Decoded here, it must be UTF-8 with no control character, 60 characters at most.
$association = rawurldecode(str_replace('_', '%20', matching('WEBMAIL_ASSOCIATION', '/^(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2}){1,180}$/', 'Association')));
if (!mb_check_encoding($association, 'UTF-8') || preg_match('/\p{C}/u', $association) || mb_strlen($association) > 60 || trim($association) === '') {
    refuse('WEBMAIL_ASSOCIATION does not decode to a name (UTF-8, printable, 60 characters at most)');
}
// 32 characters for AES-256-CBC's key (Roundcube encrypts the IMAP password kept in the session with it).
$desKey = env('WEBMAIL_DES_KEY');
if (strlen($desKey) < 32) refuse('WEBMAIL_DES_KEY is shorter than 32 characters');

// Whom to trust for the mail server's certificate: the system's CAs, or only the CA given (base64 of a PEM file,
// since an environment value cannot hold line breaks). Verification itself is never turned off.
$ca = env('WEBMAIL_TLS_CA', 'system');
$cafile = '/etc/ssl/certs/ca-certificates.crt';
if ($ca !== 'system') {
    $pem = base64_decode($ca, true);
    if ($pem === false || !preg_match_all('/-----BEGIN CERTIFICATE-----[A-Za-z0-9+\/=\s]+-----END CERTIFICATE-----/', $pem, $certs)) {
        refuse('WEBMAIL_TLS_CA is neither "system" nor the base64 of PEM certificates');
    }
    foreach ($certs[0] as $c) if (openssl_x509_read($c) === false) refuse('WEBMAIL_TLS_CA holds a certificate that does not parse');
    $cafile = RUN . '/mail-ca.pem';
    file_put_contents($cafile, implode("\n", $certs[0]) . "\n");
}
$tls = ['ssl' => [
    'verify_peer' => true, 'verify_peer_name' => true, 'allow_self_signed' => false,
    'cafile' => $cafile, 'SNI_enabled' => true, 'disable_compression' => true,
]];

$config = [
    'db_dsnw' => 'sqlite:////var/lib/cattery-webmail/roundcube.db?mode=0600',
    'imap_host' => scheme('WEBMAIL_IMAP_TLS') . "://$imapHost:$imapPort",
    'smtp_host' => scheme('WEBMAIL_SMTP_TLS') . "://$smtpHost:$smtpPort",
    'imap_conn_options' => $tls,
    'smtp_conn_options' => $tls,
    // Residents sign in with their whole address, the mail instance's login; "marie" alone becomes
    // marie@<domain>. Lowercased, as cattery makes mail accounts.
    'smtp_user' => '%u',
    'smtp_pass' => '%p',
    'username_domain' => $domain,
    'mail_domain' => $domain,
    'login_lc' => 2,
    // The mail server refuses any sender but the login's own address: one identity, its address fixed.
    'identities_level' => 3,
    'create_default_folders' => true,
    'des_key' => substr($desKey, 0, 32),
    'cipher_method' => 'AES-256-CBC',
    'language' => $lang,
    'product_name' => "Courriel — $association",
    'useragent' => 'Courriel',
    'support_url' => '',
    // elastic with its accessibility faults fixed (skin/ in the build context); the only skin offered.
    'skin' => 'cattery',
    'skins_allowed' => ['cattery'],
    // filesystem_attachments and jqueryui are loaded by Roundcube itself; nothing else.
    'plugins' => [],
    'enable_installer' => false,
    'enable_spellcheck' => false,
    // A public computer: no remembered login, short sessions (minutes), cookies HttpOnly and SameSite=Lax
    // (Secure when the request came over HTTPS: see lighttpd.conf), pages framed only by Roundcube itself.
    'login_autocomplete' => 0,
    'session_lifetime' => 10,
    'session_samesite' => 'Lax',
    'x_frame_options' => 'sameorigin',
    'log_driver' => 'stdout',
    'log_logins' => true,
    'temp_dir' => '/tmp/',
    'http_received_header' => false,
];

$out = RUN . '/config.inc.php';
$tmp = "$out.tmp";
file_put_contents($tmp, "<?php\n// Made by make-config.php at start; see there.\n\$config = " . var_export($config, true) . ";\n");
chmod($tmp, 0600);
rename($tmp, $out);
