<?php
/**
 * The few WordPress functions and classes the plugin uses, small and honest:
 * hooks run by priority, escaping really escapes, options and transients live
 * in memory. Shared by the PHPUnit bootstrap and the integration router; the
 * HTTP API comes from http-recorder.php (unit tests) or http-streams.php (router).
 *
 * @package Cryptum_Bridge
 */

$GLOBALS['cryptum_stub'] = array();

/**
 * $wpdb for the one table the plugin writes: records every insert and delete,
 * keeps the rows in memory, gives rows ids from 41 up (so a test cannot pass
 * by assuming 1), and fails every write when $fail is set.
 */
class Cryptum_Stub_Wpdb {
	public $prefix    = 'wp_';
	public $insert_id = 0;
	public $fail      = false;

	/** @var array<int, array> Each call: array( method, table, data or where, formats ). */
	public $calls = array();

	/** @var array<string, array<int, array>> Table => key_id => row. */
	public $tables = array();

	private $next_id = 41;

	/** Adds a row without recording a call, as if someone else had made it. */
	public function add_row( $table, array $row ) {
		$id                            = $this->next_id++;
		$this->tables[ $table ][ $id ] = array( 'key_id' => $id ) + $row;
		return $id;
	}

	public function insert( $table, $data, $format = null ) {
		$this->calls[] = array( 'insert', $table, $data, $format );
		if ( $this->fail ) {
			$this->insert_id = 0;
			return false;
		}
		$this->insert_id = $this->add_row( $table, $data );
		return 1;
	}

	public function delete( $table, $where, $where_format = null ) {
		$this->calls[] = array( 'delete', $table, $where, $where_format );
		if ( $this->fail ) {
			return false;
		}
		$deleted = 0;
		$rows    = isset( $this->tables[ $table ] ) ? $this->tables[ $table ] : array();
		foreach ( $rows as $id => $row ) {
			foreach ( $where as $column => $value ) {
				if ( ! isset( $row[ $column ] ) || (string) $row[ $column ] !== (string) $value ) {
					continue 2;
				}
			}
			unset( $this->tables[ $table ][ $id ] );
			++$deleted;
		}
		return $deleted;
	}
}

/** Thrown by wp_die(): the request ends there; the code is the HTTP status. */
class Cryptum_Stub_Died extends RuntimeException {
}

/** Forgets every hook, option, transient, route, meta box, HTTP exchange, database write and redirect. */
function cryptum_stub_reset() {
	$GLOBALS['cryptum_stub'] = array(
		'hooks'              => array(),
		'options'            => array(),
		'transients'         => array(),
		'routes'             => array(),
		'meta_boxes'         => array(),
		'orders'             => array(),
		'requests'           => array(),
		'responses'          => array(),
		'redirects'          => array(),
		'wc_settings_errors' => array(),
		// true, false, or the list of capabilities the current user has.
		'can'                => true,
		'user_id'            => 7,
		'home'               => 'https://shop.example.com',
	);
	$GLOBALS['wpdb'] = new Cryptum_Stub_Wpdb();
}
cryptum_stub_reset();

// Hooks.

function add_filter( $hook, $callback, $priority = 10, $accepted_args = 1 ) {
	$GLOBALS['cryptum_stub']['hooks'][ $hook ][ $priority ][] = array( $callback, $accepted_args );
	return true;
}

function add_action( $hook, $callback, $priority = 10, $accepted_args = 1 ) {
	return add_filter( $hook, $callback, $priority, $accepted_args );
}

function apply_filters( $hook, $value, ...$args ) {
	$by_priority = isset( $GLOBALS['cryptum_stub']['hooks'][ $hook ] ) ? $GLOBALS['cryptum_stub']['hooks'][ $hook ] : array();
	ksort( $by_priority );
	foreach ( $by_priority as $callbacks ) {
		foreach ( $callbacks as $entry ) {
			$value = call_user_func_array( $entry[0], array_slice( array_merge( array( $value ), $args ), 0, $entry[1] ) );
		}
	}
	return $value;
}

function do_action( $hook, ...$args ) {
	$by_priority = isset( $GLOBALS['cryptum_stub']['hooks'][ $hook ] ) ? $GLOBALS['cryptum_stub']['hooks'][ $hook ] : array();
	ksort( $by_priority );
	foreach ( $by_priority as $callbacks ) {
		foreach ( $callbacks as $entry ) {
			call_user_func_array( $entry[0], array_slice( $args, 0, $entry[1] ) );
		}
	}
}

/** The priority $callback is hooked at, false if it is not; with no callback, whether anything is hooked. */
function has_action( $hook, $callback = false ) {
	$by_priority = isset( $GLOBALS['cryptum_stub']['hooks'][ $hook ] ) ? $GLOBALS['cryptum_stub']['hooks'][ $hook ] : array();
	if ( false === $callback ) {
		return (bool) $by_priority;
	}
	foreach ( $by_priority as $priority => $callbacks ) {
		foreach ( $callbacks as $entry ) {
			if ( $entry[0] === $callback ) {
				return $priority;
			}
		}
	}
	return false;
}

function has_filter( $hook, $callback = false ) {
	return has_action( $hook, $callback );
}

function __return_true() {
	return true;
}

// Options and transients.

function get_option( $name, $default = false ) {
	return array_key_exists( $name, $GLOBALS['cryptum_stub']['options'] ) ? $GLOBALS['cryptum_stub']['options'][ $name ] : $default;
}

function update_option( $name, $value, $autoload = null ) {
	$GLOBALS['cryptum_stub']['options'][ $name ] = $value;
	return true;
}

function delete_option( $name ) {
	unset( $GLOBALS['cryptum_stub']['options'][ $name ] );
	return true;
}

function get_transient( $name ) {
	return isset( $GLOBALS['cryptum_stub']['transients'][ $name ] ) ? $GLOBALS['cryptum_stub']['transients'][ $name ]['value'] : false;
}

function set_transient( $name, $value, $expiration = 0 ) {
	$GLOBALS['cryptum_stub']['transients'][ $name ] = array(
		'value'      => $value,
		'expiration' => $expiration,
	);
	return true;
}

function delete_transient( $name ) {
	unset( $GLOBALS['cryptum_stub']['transients'][ $name ] );
	return true;
}

// Translation and escaping.

function __( $text, $domain = 'default' ) {
	return $text;
}

function esc_html( $text ) {
	return htmlspecialchars( (string) $text, ENT_QUOTES, 'UTF-8' );
}

function esc_attr( $text ) {
	return htmlspecialchars( (string) $text, ENT_QUOTES, 'UTF-8' );
}

function esc_html__( $text, $domain = 'default' ) {
	return esc_html( __( $text, $domain ) );
}

function esc_attr__( $text, $domain = 'default' ) {
	return esc_attr( __( $text, $domain ) );
}

/** Like WordPress: '' unless the scheme is allowed; characters outside a URL's set removed. */
function esc_url_raw( $url, $protocols = null ) {
	$url = preg_replace( '|[^a-z0-9-~+_.?#=!&;,/:%@$\|*\'()\[\]\x80-\xff]|i', '', trim( (string) $url ) );
	if ( '' === $url ) {
		return '';
	}
	$scheme = strtolower( (string) parse_url( $url, PHP_URL_SCHEME ) );
	$allowed = null === $protocols ? array( 'http', 'https' ) : $protocols;
	return in_array( $scheme, $allowed, true ) ? $url : '';
}

/** Like WordPress: quotes and backslashes escaped, `<` `>` `&` as entities, for an inline script attribute. */
function esc_js( $text ) {
	$text = htmlspecialchars( (string) $text, ENT_COMPAT, 'UTF-8' );
	$text = str_replace( array( "\\", "'", "\r", "\n" ), array( '\\\\', "\\'", '', '\\n' ), $text );
	return $text;
}

function esc_url( $url, $protocols = null ) {
	return str_replace( array( '&', "'", '"', '<', '>' ), array( '&#038;', '&#039;', '&quot;', '&lt;', '&gt;' ), esc_url_raw( $url, $protocols ) );
}

function sanitize_key( $key ) {
	return preg_replace( '/[^a-z0-9_\-]/', '', strtolower( (string) $key ) );
}

function wp_unslash( $value ) {
	return is_string( $value ) ? stripslashes( $value ) : $value;
}

function wp_parse_url( $url, $component = -1 ) {
	return parse_url( $url, $component );
}

function wp_json_encode( $data ) {
	return json_encode( $data );
}

function current_user_can( $capability ) {
	$can = $GLOBALS['cryptum_stub']['can'];
	return is_array( $can ) ? in_array( $capability, $can, true ) : (bool) $can;
}

function get_current_user_id() {
	return $GLOBALS['cryptum_stub']['user_id'];
}

// URLs.

function home_url( $path = '' ) {
	return $GLOBALS['cryptum_stub']['home'] . ( '' === $path ? '' : '/' . ltrim( $path, '/' ) );
}

/** Under the site URL, which tests do not change (home_url() may differ, as in WordPress). */
function admin_url( $path = '' ) {
	return 'https://shop.example.com/wp-admin/' . ltrim( $path, '/' );
}

/** As WordPress for a plugin in its own folder: `folder/file.php`. */
function plugin_basename( $file ) {
	return basename( dirname( $file ) ) . '/' . basename( $file );
}

/** Records the redirect; the caller ends the request. */
function wp_safe_redirect( $location, $status = 302 ) {
	$GLOBALS['cryptum_stub']['redirects'][] = array( $location, $status );
	return true;
}

// Nonces and dying.

/** Bound to the action and the user, like WordPress's (without the time tick). */
function wp_create_nonce( $action = -1 ) {
	return substr( hash_hmac( 'sha256', $action . '|' . get_current_user_id(), 'cryptum-stub-nonce-salt' ), 0, 10 );
}

function wp_verify_nonce( $nonce, $action = -1 ) {
	return is_string( $nonce ) && '' !== $nonce && hash_equals( wp_create_nonce( $action ), $nonce ) ? 1 : false;
}

function wp_nonce_field( $action = -1, $name = '_wpnonce', $referer = true, $display = true ) {
	$field = '<input type="hidden" id="' . esc_attr( $name ) . '" name="' . esc_attr( $name ) . '" value="' . esc_attr( wp_create_nonce( $action ) ) . '" />';
	if ( $display ) {
		echo $field;
	}
	return $field;
}

function wp_nonce_ays( $action ) {
	wp_die( 'The link you followed has expired.', 'Something went wrong.', array( 'response' => 403, 'back_link' => true ) );
}

/** As WordPress: the nonce from $_REQUEST, or wp_nonce_ays() (a 403) when it is missing or wrong. */
function check_admin_referer( $action = -1, $query_arg = '_wpnonce' ) {
	$nonce  = isset( $_REQUEST[ $query_arg ] ) ? wp_unslash( $_REQUEST[ $query_arg ] ) : '';
	$result = wp_verify_nonce( $nonce, $action );
	if ( ! $result ) {
		wp_nonce_ays( $action );
	}
	return $result;
}

/** As WordPress reads its arguments (an integer title or args is the status); throws instead of exiting. */
function wp_die( $message = '', $title = '', $args = array() ) {
	if ( is_int( $args ) ) {
		$args = array( 'response' => $args );
	} elseif ( is_int( $title ) ) {
		$args  = array( 'response' => $title );
		$title = '';
	}
	throw new Cryptum_Stub_Died( (string) $message, isset( $args['response'] ) ? (int) $args['response'] : 500 );
}

function status_header( $code ) {
	http_response_code( (int) $code );
}

// Errors and the HTTP API's response accessors.

class WP_Error {
	public $code;
	public $message;

	public function __construct( $code = '', $message = '' ) {
		$this->code    = $code;
		$this->message = $message;
	}

	public function get_error_message() {
		return $this->message;
	}
}

function is_wp_error( $thing ) {
	return $thing instanceof WP_Error;
}

function wp_remote_retrieve_response_code( $response ) {
	return is_wp_error( $response ) || ! isset( $response['response']['code'] ) ? '' : $response['response']['code'];
}

/**
 * One header of a response, by case-insensitive name ('' if absent). The
 * recording stub keeps headers by name; the streams stub keeps raw lines.
 */
function wp_remote_retrieve_header( $response, $name ) {
	if ( is_wp_error( $response ) || ! isset( $response['headers'] ) ) {
		return '';
	}
	foreach ( $response['headers'] as $key => $value ) {
		if ( is_int( $key ) ) {
			list( $key, $value ) = array_pad( explode( ':', $value, 2 ), 2, '' );
		}
		if ( strtolower( trim( $key ) ) === strtolower( $name ) ) {
			return trim( $value );
		}
	}
	return '';
}

function wp_remote_retrieve_body( $response ) {
	return is_wp_error( $response ) || ! isset( $response['body'] ) ? '' : $response['body'];
}

// REST API.

function register_rest_route( $namespace, $route, $args ) {
	$GLOBALS['cryptum_stub']['routes'][ '/' . trim( $namespace, '/' ) . $route ] = $args;
	return true;
}

class WP_REST_Request {
	private $method;
	private $route;
	private $headers = array();
	private $body    = '';

	public function __construct( $method = '', $route = '' ) {
		$this->method = $method;
		$this->route  = $route;
	}

	/** As WordPress: header names are lower-cased, `-` becomes `_`. */
	public static function canonicalize_header_name( $name ) {
		return str_replace( '-', '_', strtolower( $name ) );
	}

	public function get_method() {
		return $this->method;
	}

	public function get_route() {
		return $this->route;
	}

	public function set_header( $name, $value ) {
		$this->headers[ self::canonicalize_header_name( $name ) ] = $value;
	}

	public function get_header( $name ) {
		$name = self::canonicalize_header_name( $name );
		return isset( $this->headers[ $name ] ) ? $this->headers[ $name ] : null;
	}

	public function set_body( $body ) {
		$this->body = $body;
	}

	public function get_body() {
		return $this->body;
	}
}

class WP_REST_Response {
	public $data;
	public $status;

	public function __construct( $data = null, $status = 200 ) {
		$this->data   = $data;
		$this->status = $status;
	}

	public function get_data() {
		return $this->data;
	}

	public function get_status() {
		return $this->status;
	}
}

// Admin screens.

function add_meta_box( $id, $title, $callback, $screen = null, $context = 'advanced', $priority = 'default' ) {
	$GLOBALS['cryptum_stub']['meta_boxes'][] = compact( 'id', 'title', 'callback', 'screen', 'context', 'priority' );
}

class WP_Post {
	public $ID;

	public function __construct( $id ) {
		$this->ID = $id;
	}
}
