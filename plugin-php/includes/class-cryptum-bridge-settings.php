<?php
/**
 * The plugin's settings: bridge URL, mode, public URL and explorer network.
 *
 * Each value comes from a wp-config.php constant when one is defined, else from
 * the option saved on the settings screen, else from its default; values are
 * sanitised on read as well as on save, so a bad constant cannot slip through.
 *
 * @package Cryptum_Bridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Reads and sanitises the plugin's settings.
 */
final class Cryptum_Bridge_Settings {

	const DEFAULT_BRIDGE_URL = 'http://127.0.0.1:8787';
	const MODES              = array( 'relay', 'direct' );
	const NETWORKS           = array( 'production', 'test' );

	/** Option names, by setting. */
	const OPTIONS = array(
		'bridge_url' => 'cryptum_bridge_url',
		'mode'       => 'cryptum_bridge_mode',
		'public_url' => 'cryptum_bridge_public_url',
		'network'    => 'cryptum_bridge_network',
	);

	/** The wp-config.php constants that override the options. */
	const CONSTANTS = array(
		'bridge_url' => 'CRYPTUM_BRIDGE_URL',
		'mode'       => 'CRYPTUM_BRIDGE_MODE',
		'public_url' => 'CRYPTUM_BRIDGE_PUBLIC_URL',
	);

	/**
	 * Looks a constant up by name; null when it is not defined.
	 *
	 * @var callable
	 */
	private $constant;

	/**
	 * @param callable|null $constant Constant lookup (tests pass their own); defaults to defined()/constant().
	 */
	public function __construct( $constant = null ) {
		$this->constant = $constant ? $constant : static function ( $name ) {
			return defined( $name ) ? constant( $name ) : null;
		};
	}

	/** The bridge's base URL, without a trailing slash. */
	public function bridge_url(): string {
		$url = self::sanitize_url( $this->raw( 'bridge_url' ) );
		return rtrim( '' === $url ? self::DEFAULT_BRIDGE_URL : $url, '/' );
	}

	/** Where the relay forwards callbacks. */
	public function callback_endpoint(): string {
		return $this->bridge_url() . '/callbacks/cryptum';
	}

	/** The bridge's readiness check: 200 when it can keep a callback now, 503 with its reasons when not. */
	public function readiness_endpoint(): string {
		return $this->bridge_url() . '/readyz';
	}

	/** `relay` (callbacks reach WordPress and are forwarded) or `direct` (Cryptum posts to the bridge). */
	public function mode(): string {
		return self::sanitize_mode( $this->raw( 'mode' ) );
	}

	/** The bridge's callback URL as Cryptum reaches it, e.g. https://pay.example.com/callbacks/cryptum; '' if unset. */
	public function public_url(): string {
		return self::sanitize_url( $this->raw( 'public_url' ) );
	}

	/** Which block explorers the order screen links to: `production` or `test`. */
	public function network(): string {
		return self::sanitize_network( get_option( self::OPTIONS['network'], 'production' ) );
	}

	/**
	 * The constant that overrides a setting, or null when the option is in charge.
	 *
	 * @param string $key A key of self::CONSTANTS.
	 */
	public function overriding_constant( string $key ): ?string {
		if ( ! isset( self::CONSTANTS[ $key ] ) ) {
			return null;
		}
		return null === call_user_func( $this->constant, self::CONSTANTS[ $key ] ) ? null : self::CONSTANTS[ $key ];
	}

	/**
	 * An http(s) URL with a host, cleaned like esc_url_raw(); '' for anything else.
	 *
	 * @param mixed $value Untrusted input.
	 */
	public static function sanitize_url( $value ): string {
		if ( ! is_string( $value ) ) {
			return '';
		}
		$value  = trim( $value );
		$scheme = strtolower( (string) wp_parse_url( $value, PHP_URL_SCHEME ) );
		$host   = (string) wp_parse_url( $value, PHP_URL_HOST );
		if ( ! in_array( $scheme, array( 'http', 'https' ), true ) || '' === $host ) {
			return '';
		}
		return esc_url_raw( $value, array( 'http', 'https' ) );
	}

	/**
	 * One of self::MODES; anything else is the default, `relay`.
	 *
	 * @param mixed $value Untrusted input.
	 */
	public static function sanitize_mode( $value ): string {
		$value = is_string( $value ) ? strtolower( trim( $value ) ) : '';
		return in_array( $value, self::MODES, true ) ? $value : 'relay';
	}

	/**
	 * One of self::NETWORKS; anything else is `production`.
	 *
	 * @param mixed $value Untrusted input.
	 */
	public static function sanitize_network( $value ): string {
		$value = is_string( $value ) ? strtolower( trim( $value ) ) : '';
		return in_array( $value, self::NETWORKS, true ) ? $value : 'production';
	}

	/**
	 * The unsanitised value: the constant if defined, else the saved option.
	 *
	 * @param string $key A key of self::OPTIONS.
	 * @return mixed
	 */
	private function raw( string $key ) {
		$constant = $this->overriding_constant( $key );
		if ( null !== $constant ) {
			return call_user_func( $this->constant, $constant );
		}
		return get_option( self::OPTIONS[ $key ], '' );
	}
}
