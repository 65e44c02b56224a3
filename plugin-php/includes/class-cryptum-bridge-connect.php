<?php
/**
 * The connect button: a WooCommerce REST API key for the bridge, made from WordPress.
 *
 * WooCommerce's own app-authorization flow posts a new key only to an
 * https:// callback URL, which a bridge on loopback does not have. So the key
 * is made the way WooCommerce makes keys itself: a row in
 * {prefix}woocommerce_api_keys holding the HMAC of the consumer key (never the
 * key), the secret, and the key's last seven characters. The plain key then
 * exists only in a notice shown once to the user who made it: a transient for
 * that user, read and deleted on the next page. The plugin remembers only the
 * row's id (and its last seven characters, as a check), so its revoke button
 * deletes that row and no other.
 *
 * @package Cryptum_Bridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Creates and revokes the bridge's WooCommerce key from the plugin's settings section.
 */
final class Cryptum_Bridge_Connect {

	/** admin-post.php actions, also the nonces' actions. */
	const CREATE_ACTION = 'cryptum_bridge_create_key';
	const REVOKE_ACTION = 'cryptum_bridge_revoke_key';

	/** Who may create or revoke the key: the key acts as its user, who needs this capability anyway. */
	const CAPABILITY = 'manage_woocommerce';

	/** The remembered key: array( key_id, truncated_key, user_id ). Never the key or the secret. */
	const OPTION = 'cryptum_bridge_api_key';

	/** The one-time notice, per user: this prefix and the user's id. */
	const NOTICE_TRANSIENT = 'cryptum_bridge_key_notice_';

	/** The nonce's field, apart from WooCommerce's `_wpnonce` on the same page. */
	const NONCE_FIELD = 'cryptum_bridge_nonce';

	/** Long enough for the redirect that follows; short, because the notice may hold the secret. */
	const NOTICE_SECONDS = 300;

	const TABLE       = 'woocommerce_api_keys';
	const DESCRIPTION = 'cryptum-bridge';
	const PERMISSIONS = 'read_write';

	/** Where the systemd unit's LoadCredential= lines read the bridge's secrets from. */
	const CREDENTIALS_DIR = '/etc/cryptum-bridge/credentials';

	/**
	 * Ends the request after the redirect: callable(). Never returns in production.
	 *
	 * @var callable
	 */
	private $terminate;

	/**
	 * @param callable|null $terminate Defaults to exit.
	 */
	public function __construct( $terminate = null ) {
		$this->terminate = $terminate ? $terminate : static function () {
			exit;
		};
	}

	public function register(): void {
		add_action( 'admin_post_' . self::CREATE_ACTION, array( $this, 'create' ) );
		add_action( 'admin_post_' . self::REVOKE_ACTION, array( $this, 'revoke' ) );
		add_action( 'admin_notices', array( $this, 'render_notice' ) );
		// After WooCommerce's settings form: a form of our own cannot sit inside it.
		add_action( 'woocommerce_after_settings_advanced', array( $this, 'render_box' ) );
	}

	/** Handles the create button: inserts the key as WooCommerce does, then shows it once. */
	public function create(): void {
		$this->guard( self::CREATE_ACTION );
		if ( null !== self::remembered_key() ) {
			$this->finish( array( 'status' => 'exists' ) );
			return;
		}

		global $wpdb;
		$user_id         = get_current_user_id();
		$consumer_key    = 'ck_' . wc_rand_hash();
		$consumer_secret = 'cs_' . wc_rand_hash();
		$truncated_key   = substr( $consumer_key, -7 );
		$inserted        = $wpdb->insert(
			$wpdb->prefix . self::TABLE,
			array(
				'user_id'         => $user_id,
				'description'     => self::DESCRIPTION,
				'permissions'     => self::PERMISSIONS,
				'consumer_key'    => wc_api_hash( $consumer_key ),
				'consumer_secret' => $consumer_secret,
				'truncated_key'   => $truncated_key,
			),
			array( '%d', '%s', '%s', '%s', '%s', '%s' )
		);
		if ( ! $inserted ) {
			$this->finish( array( 'status' => 'create_failed' ) );
			return;
		}
		update_option(
			self::OPTION,
			array(
				'key_id'        => (int) $wpdb->insert_id,
				'truncated_key' => $truncated_key,
				'user_id'       => (int) $user_id,
			),
			false
		);
		$this->finish(
			array(
				'status'          => 'created',
				'url'             => home_url(),
				'consumer_key'    => $consumer_key,
				'consumer_secret' => $consumer_secret,
			)
		);
	}

	/** Handles the revoke button: deletes the row this plugin made, and only that one. */
	public function revoke(): void {
		$this->guard( self::REVOKE_ACTION );
		$remembered = self::remembered_key();
		if ( null === $remembered ) {
			$this->finish( array( 'status' => 'none' ) );
			return;
		}

		global $wpdb;
		$deleted = $wpdb->delete(
			$wpdb->prefix . self::TABLE,
			// The last seven characters too: an id WooCommerce has since given to another key is left alone.
			array(
				'key_id'        => $remembered['key_id'],
				'truncated_key' => $remembered['truncated_key'],
			),
			array( '%d', '%s' )
		);
		if ( false === $deleted ) {
			$this->finish( array( 'status' => 'revoke_failed' ) );
			return;
		}
		delete_option( self::OPTION );
		$this->finish( array( 'status' => $deleted ? 'revoked' : 'gone' ) );
	}

	/** Shows, once, what the last create or revoke did; the transient goes whatever happens next. */
	public function render_notice(): void {
		$name   = self::NOTICE_TRANSIENT . get_current_user_id();
		$notice = get_transient( $name );
		if ( false === $notice ) {
			return;
		}
		delete_transient( $name );
		if ( is_array( $notice ) && current_user_can( self::CAPABILITY ) ) {
			echo self::notice_html( $notice ); // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- notice_html() escapes every value.
		}
	}

	/** Prints the create or revoke button under the plugin's settings section. */
	public function render_box(): void {
		if ( ! isset( $GLOBALS['current_section'] ) || Cryptum_Bridge_Admin_Settings::SECTION !== $GLOBALS['current_section'] || ! current_user_can( self::CAPABILITY ) ) {
			return;
		}
		echo $this->box_html(); // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- box_html() escapes every value.
	}

	/** The box: what the bridge's key is, and the one button that applies. */
	public function box_html(): string {
		$remembered = self::remembered_key();
		$html       = '<h2>' . esc_html__( 'WooCommerce key for the bridge', 'cryptum-bridge' ) . '</h2>';
		if ( null === $remembered ) {
			$html  .= '<p>' . esc_html__( 'The bridge changes orders through the WooCommerce REST API and needs a key with read/write permission. This button creates one that acts as you, and shows it once, with the lines to put in the bridge\'s configuration.', 'cryptum-bridge' ) . '</p>';
			$action = self::CREATE_ACTION;
			$button = '<button type="submit" class="button button-primary">' . esc_html__( 'Create a WooCommerce key for the bridge', 'cryptum-bridge' ) . '</button>';
		} else {
			$html  .= '<p>' . sprintf(
				/* translators: 1: the key's id, 2: the key's last seven characters. */
				esc_html__( 'This plugin created the key with id %1$s, ending in %2$s (listed under WooCommerce > Settings > Advanced > REST API). Revoking it deletes that key only; the bridge then cannot change orders until it has a new one.', 'cryptum-bridge' ),
				esc_html( (string) $remembered['key_id'] ),
				'<code>…' . esc_html( $remembered['truncated_key'] ) . '</code>'
			) . '</p>';
			$action = self::REVOKE_ACTION;
			$button = '<button type="submit" class="button" onclick="' . esc_attr( 'return window.confirm( \'' . esc_js( __( 'Revoke the bridge\'s WooCommerce key? The bridge cannot change orders until it has a new one.', 'cryptum-bridge' ) ) . '\' );' ) . '">'
				. esc_html__( 'Revoke the bridge\'s WooCommerce key', 'cryptum-bridge' ) . '</button>';
		}
		return $html
			. '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '">'
			. '<input type="hidden" name="action" value="' . esc_attr( $action ) . '" />'
			. wp_nonce_field( $action, self::NONCE_FIELD, true, false )
			. '<p>' . $button . '</p>'
			. '</form>';
	}

	/**
	 * The markup of a one-time notice.
	 *
	 * @param array $notice What create() or revoke() left for the next page.
	 */
	public static function notice_html( array $notice ): string {
		$status = isset( $notice['status'] ) ? $notice['status'] : '';
		if ( 'created' === $status && isset( $notice['url'], $notice['consumer_key'], $notice['consumer_secret'] ) ) {
			$files = array(
				'woocommerce.url = ' . self::toml_string( $notice['url'] ),
				'woocommerce.consumer_key_file = "woocommerce_consumer_key"',
				'woocommerce.consumer_secret_file = "woocommerce_consumer_secret"',
			);
			return '<div class="notice notice-success">'
				. '<p><strong>' . esc_html__( 'Cryptum Bridge: a WooCommerce key with read/write permission was created. Copy it now: it is shown only this once.', 'cryptum-bridge' ) . '</strong></p>'
				. '<p>' . esc_html__( 'Either, as root on the bridge\'s host, write the key and secret as credential files (the systemd unit loads them):', 'cryptum-bridge' ) . '</p>'
				. self::pre( self::credentials_command( $notice['consumer_key'], $notice['consumer_secret'] ) )
				. '<p>' . esc_html__( 'and put these lines in the store\'s [[stores]] section of /etc/cryptum-bridge/config.toml:', 'cryptum-bridge' ) . '</p>'
				. self::pre( implode( "\n", $files ) )
				. '<p>' . esc_html__( 'Or put the key in config.toml itself (readable by every local user, so the files above are safer):', 'cryptum-bridge' ) . '</p>'
				. self::pre( self::config_lines( $notice['url'], $notice['consumer_key'], $notice['consumer_secret'] ) )
				/* translators: %s: a shell command. */
				. '<p>' . sprintf( esc_html__( 'Then restart the bridge: %s', 'cryptum-bridge' ), '<code>sudo systemctl restart cryptum-bridge</code>' ) . '</p>'
				. '</div>';
		}
		$messages = array(
			'exists'        => array( 'warning', __( 'Cryptum Bridge: the bridge already has a key from this plugin. Revoke it first to create a new one.', 'cryptum-bridge' ) ),
			'create_failed' => array( 'error', __( 'Cryptum Bridge: WooCommerce\'s key table refused the new key; no key was created.', 'cryptum-bridge' ) ),
			'revoked'       => array( 'success', __( 'Cryptum Bridge: the bridge\'s WooCommerce key was revoked.', 'cryptum-bridge' ) ),
			'gone'          => array( 'info', __( 'Cryptum Bridge: the bridge\'s WooCommerce key had already been deleted in WooCommerce; the plugin no longer lists it.', 'cryptum-bridge' ) ),
			'revoke_failed' => array( 'error', __( 'Cryptum Bridge: WooCommerce\'s key table refused the deletion; the key still works.', 'cryptum-bridge' ) ),
			'none'          => array( 'info', __( 'Cryptum Bridge: this plugin has no key to revoke.', 'cryptum-bridge' ) ),
		);
		if ( ! isset( $messages[ $status ] ) ) {
			return '';
		}
		return '<div class="notice notice-' . esc_attr( $messages[ $status ][0] ) . '"><p>' . esc_html( $messages[ $status ][1] ) . '</p></div>';
	}

	/**
	 * The bridge's config lines for a store's WooCommerce, with the key and secret inline.
	 *
	 * @param string $url             WordPress's home URL.
	 * @param string $consumer_key    The plain consumer key.
	 * @param string $consumer_secret The consumer secret.
	 */
	public static function config_lines( string $url, string $consumer_key, string $consumer_secret ): string {
		return 'woocommerce.url = ' . self::toml_string( $url ) . "\n"
			. 'woocommerce.consumer_key = ' . self::toml_string( $consumer_key ) . "\n"
			. 'woocommerce.consumer_secret = ' . self::toml_string( $consumer_secret );
	}

	/**
	 * One line for sh or bash, run as root, that writes the key and secret as mode-0600 credential files.
	 *
	 * @param string $consumer_key    The plain consumer key.
	 * @param string $consumer_secret The consumer secret.
	 * @param string $directory       Where the files go (tests pass a temporary one).
	 */
	public static function credentials_command( string $consumer_key, string $consumer_secret, string $directory = self::CREDENTIALS_DIR ): string {
		$directory = rtrim( $directory, '/' );
		return 'install -d -m 700 ' . self::shell_quote( $directory )
			. " && printf '%s' " . self::shell_quote( $consumer_key ) . ' | install -m 600 /dev/stdin ' . self::shell_quote( $directory . '/woocommerce_consumer_key' )
			. " && printf '%s' " . self::shell_quote( $consumer_secret ) . ' | install -m 600 /dev/stdin ' . self::shell_quote( $directory . '/woocommerce_consumer_secret' );
	}

	/**
	 * A word for sh and bash: single-quoted, with any single quote spelled '\''.
	 *
	 * @param string $word Any text.
	 */
	public static function shell_quote( string $word ): string {
		return "'" . str_replace( "'", "'\\''", $word ) . "'";
	}

	/**
	 * A TOML basic string.
	 *
	 * @param string $text Any text.
	 */
	public static function toml_string( string $text ): string {
		$escaped = addcslashes( $text, "\"\\" );
		$escaped = preg_replace_callback(
			'/[\x00-\x1f\x7f]/',
			static function ( $match ) {
				return sprintf( '\\u%04X', ord( $match[0] ) );
			},
			$escaped
		);
		return '"' . $escaped . '"';
	}

	/**
	 * The key this plugin created, or null.
	 *
	 * @return array{key_id: int, truncated_key: string, user_id: int}|null
	 */
	public static function remembered_key(): ?array {
		$key = get_option( self::OPTION, null );
		if ( ! is_array( $key ) || ! isset( $key['key_id'], $key['truncated_key'] ) || (int) $key['key_id'] < 1 || ! is_string( $key['truncated_key'] ) ) {
			return null;
		}
		return array(
			'key_id'        => (int) $key['key_id'],
			'truncated_key' => $key['truncated_key'],
			'user_id'       => isset( $key['user_id'] ) ? (int) $key['user_id'] : 0,
		);
	}

	/**
	 * Refuses, with a 403, a user who cannot manage WooCommerce and a request without this action's nonce.
	 *
	 * @param string $action The nonce's action.
	 */
	private function guard( string $action ): void {
		if ( ! current_user_can( self::CAPABILITY ) ) {
			wp_die( esc_html__( 'You are not allowed to manage the bridge\'s WooCommerce key.', 'cryptum-bridge' ), '', array( 'response' => 403 ) );
		}
		$method = isset( $_SERVER['REQUEST_METHOD'] ) ? strtoupper( sanitize_key( wp_unslash( $_SERVER['REQUEST_METHOD'] ) ) ) : '';
		if ( 'POST' !== $method ) {
			wp_die( esc_html__( 'This action needs the button on the settings screen.', 'cryptum-bridge' ), '', array( 'response' => 405 ) );
		}
		check_admin_referer( $action, self::NONCE_FIELD );
	}

	/**
	 * Leaves the notice for this user's next page, and goes back to the settings section.
	 *
	 * @param array $notice What to show.
	 */
	private function finish( array $notice ): void {
		set_transient( self::NOTICE_TRANSIENT . get_current_user_id(), $notice, self::NOTICE_SECONDS );
		wp_safe_redirect( Cryptum_Bridge_Admin_Settings::url() );
		call_user_func( $this->terminate );
	}

	/**
	 * Text to copy, escaped.
	 *
	 * @param string $text Plain text.
	 */
	private static function pre( string $text ): string {
		return '<pre style="white-space: pre-wrap; word-break: break-all; user-select: all">' . esc_html( $text ) . '</pre>';
	}
}
