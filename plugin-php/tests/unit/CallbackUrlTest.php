<?php
/**
 * Direct mode: the callback URL given to Cryptum.
 *
 * @package Cryptum_Bridge
 */

namespace Cryptum_Bridge\Tests;

final class CallbackUrlTest extends TestCase {

	const WOO_URL    = 'https://shop.example.com/wc-api/cryptumcheckout_payment_gateway/';
	const PUBLIC_URL = 'https://pay.example.com/callbacks/cryptum';

	public function cases(): array {
		return array(
			'direct, Cryptum gateway'         => array( 'direct', self::PUBLIC_URL, 'cryptumcheckout_payment_gateway', self::PUBLIC_URL ),
			'direct, name in another case'    => array( 'direct', self::PUBLIC_URL, 'CryptumCheckout_Payment_Gateway', self::PUBLIC_URL ),
			'direct, another gateway'         => array( 'direct', self::PUBLIC_URL, 'wc_gateway_paypal', self::WOO_URL ),
			'direct, no public URL'           => array( 'direct', '', 'cryptumcheckout_payment_gateway', self::WOO_URL ),
			'direct, unusable public URL'     => array( 'direct', 'javascript:alert(1)', 'cryptumcheckout_payment_gateway', self::WOO_URL ),
			'relay, Cryptum gateway'          => array( 'relay', self::PUBLIC_URL, 'cryptumcheckout_payment_gateway', self::WOO_URL ),
			'mode unset (relay)'              => array( '', self::PUBLIC_URL, 'cryptumcheckout_payment_gateway', self::WOO_URL ),
		);
	}

	/** @dataProvider cases */
	public function test_rewrites_only_the_cryptum_callback_url_in_direct_mode( string $mode, string $public_url, string $request, string $expected ): void {
		update_option( 'cryptum_bridge_mode', $mode );
		update_option( 'cryptum_bridge_public_url', $public_url );
		( new \Cryptum_Bridge_Callback_Url( $this->settings() ) )->register();

		// As WC()->api_request_url() calls it.
		$this->assertSame( $expected, apply_filters( 'woocommerce_api_request_url', self::WOO_URL, $request, true ) );
	}

	public function test_constants_choose_the_mode_and_url(): void {
		update_option( 'cryptum_bridge_mode', 'relay' );
		$settings = $this->settings(
			array(
				'CRYPTUM_BRIDGE_MODE'       => 'direct',
				'CRYPTUM_BRIDGE_PUBLIC_URL' => 'https://edge.example.net/callbacks/cryptum',
			)
		);
		( new \Cryptum_Bridge_Callback_Url( $settings ) )->register();

		$this->assertSame(
			'https://edge.example.net/callbacks/cryptum',
			apply_filters( 'woocommerce_api_request_url', self::WOO_URL, 'cryptumcheckout_payment_gateway', true )
		);
	}
}
