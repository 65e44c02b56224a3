<?php
/**
 * The few WooCommerce classes and functions the plugin uses.
 *
 * @package Cryptum_Bridge
 */

namespace Automattic\WooCommerce\Utilities {

	/** Records compatibility declarations. */
	class FeaturesUtil {
		public static $declared = array();

		public static function declare_compatibility( $feature, $plugin_file, $compatible = true ) {
			self::$declared[] = array( $feature, $plugin_file, $compatible );
			return true;
		}
	}
}

namespace {

	class WooCommerce {
	}

	class WC_Order {
		private $id;
		private $payment_method;
		private $meta;

		public function __construct( $id, $payment_method = '', array $meta = array() ) {
			$this->id             = $id;
			$this->payment_method = $payment_method;
			$this->meta           = $meta;
		}

		public function get_id() {
			return $this->id;
		}

		public function get_payment_method() {
			return $this->payment_method;
		}

		/** Like WooCommerce with $single = true: '' for a missing key. */
		public function get_meta( $key ) {
			return isset( $this->meta[ $key ] ) ? $this->meta[ $key ] : '';
		}
	}

	/** Orders known to wc_get_order(), added by tests. */
	function cryptum_stub_add_order( WC_Order $order ) {
		$GLOBALS['cryptum_stub']['orders'][ $order->get_id() ] = $order;
	}

	function wc_get_order( $id ) {
		return isset( $GLOBALS['cryptum_stub']['orders'][ $id ] ) ? $GLOBALS['cryptum_stub']['orders'][ $id ] : false;
	}

	/** As WooCommerce: 40 random hex characters. */
	function wc_rand_hash() {
		return bin2hex( random_bytes( 20 ) );
	}

	/** As WooCommerce stores a consumer key. */
	function wc_api_hash( $data ) {
		return hash_hmac( 'sha256', $data, 'wc-api' );
	}

	/** The settings screen's error list, as WooCommerce shows it after a save. */
	class WC_Admin_Settings {
		public static function add_error( $text ) {
			$GLOBALS['cryptum_stub']['wc_settings_errors'][] = $text;
		}
	}

	/** The HPOS orders screen id, as WooCommerce names it. */
	function wc_get_page_screen_id( $for ) {
		return 'shop-order' === $for ? 'woocommerce_page_wc-orders' : 'woocommerce_page_wc-' . $for;
	}
}
