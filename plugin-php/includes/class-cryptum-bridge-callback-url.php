<?php
/**
 * Direct mode: the callback URL handed to Cryptum points at the bridge itself.
 *
 * The reference plugin builds its callback URL with WC()->api_request_url(),
 * which passes it through the `woocommerce_api_request_url` filter.
 *
 * @package Cryptum_Bridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Rewrites the Cryptum gateway's callback URL in direct mode.
 */
final class Cryptum_Bridge_Callback_Url {

	/** The API request name the reference plugin asks WooCommerce a URL for. */
	const REQUEST = 'cryptumcheckout_payment_gateway';

	/** @var Cryptum_Bridge_Settings */
	private $settings;

	public function __construct( Cryptum_Bridge_Settings $settings ) {
		$this->settings = $settings;
	}

	public function register(): void {
		add_filter( 'woocommerce_api_request_url', array( $this, 'filter' ), 10, 2 );
	}

	/**
	 * The bridge's public URL for the Cryptum gateway in direct mode; any other URL unchanged.
	 *
	 * @param string $url     The URL WooCommerce built.
	 * @param string $request The API request name.
	 */
	public function filter( $url, $request = '' ) {
		if ( 'direct' !== $this->settings->mode() || self::REQUEST !== strtolower( (string) $request ) ) {
			return $url;
		}
		$public = $this->settings->public_url();
		return '' === $public ? $url : $public;
	}
}
