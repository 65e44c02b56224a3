<?php
/**
 * The order screen's box: explorer links, escaping, and the screens it appears on.
 *
 * @package Cryptum_Bridge
 */

namespace Cryptum_Bridge\Tests;

final class OrderMetaBoxTest extends TestCase {

	const EVM_HASH = '0x7a9c3e1f00000000000000000000000000000000000000000000000000abcdef';
	const HEX_HASH = 'a1075db55d416d3ca199f55b6084e2115b9345e16c5cf302fc80e9d5fbf5d48d';
	const SOLANA   = '5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW';

	private function box( string $network = 'production' ): \Cryptum_Bridge_Order_Meta_Box {
		update_option( 'cryptum_bridge_network', $network );
		return new \Cryptum_Bridge_Order_Meta_Box( $this->settings(), new \Cryptum_Bridge_Explorer() );
	}

	private function html( array $transactions, string $network = 'production' ): string {
		return $this->box( $network )->html( \Cryptum_Bridge_Order_Meta_Box::transactions( wp_json_encode( $transactions ) ) );
	}

	public function explorer_links(): array {
		return array(
			'ETHEREUM'        => array( 'ETHEREUM', self::EVM_HASH, 'production', 'https://etherscan.io/tx/' . self::EVM_HASH ),
			'ETHEREUM test'   => array( 'ETHEREUM', self::EVM_HASH, 'test', 'https://sepolia.etherscan.io/tx/' . self::EVM_HASH ),
			'POLYGON'         => array( 'POLYGON', self::EVM_HASH, 'production', 'https://polygonscan.com/tx/' . self::EVM_HASH ),
			'POLYGON test'    => array( 'POLYGON', self::EVM_HASH, 'test', 'https://amoy.polygonscan.com/tx/' . self::EVM_HASH ),
			'BSC'             => array( 'BSC', self::EVM_HASH, 'production', 'https://bscscan.com/tx/' . self::EVM_HASH ),
			'AVAXCCHAIN test' => array( 'AVAXCCHAIN', self::EVM_HASH, 'test', 'https://testnet.snowtrace.io/tx/' . self::EVM_HASH ),
			'CELO'            => array( 'CELO', self::EVM_HASH, 'production', 'https://celoscan.io/tx/' . self::EVM_HASH ),
			'CELO test'       => array( 'CELO', self::EVM_HASH, 'test', 'https://alfajores.celoscan.io/tx/' . self::EVM_HASH ),
			'lower-case name' => array( 'celo', self::EVM_HASH, 'production', 'https://celoscan.io/tx/' . self::EVM_HASH ),
			'BITCOIN'         => array( 'BITCOIN', self::HEX_HASH, 'production', 'https://mempool.space/tx/' . self::HEX_HASH ),
			'SOLANA test'     => array( 'SOLANA', self::SOLANA, 'test', 'https://explorer.solana.com/tx/' . self::SOLANA . '?cluster=devnet' ),
			'STELLAR'         => array( 'STELLAR', self::HEX_HASH, 'production', 'https://stellar.expert/explorer/public/tx/' . self::HEX_HASH ),
			'XRP'             => array( 'XRP', strtoupper( self::HEX_HASH ), 'production', 'https://livenet.xrpl.org/transactions/' . strtoupper( self::HEX_HASH ) ),
			'CARDANO'         => array( 'CARDANO', self::HEX_HASH, 'production', 'https://cardanoscan.io/transaction/' . self::HEX_HASH ),
			'HATHOR test'     => array( 'HATHOR', self::HEX_HASH, 'test', 'https://explorer.testnet.hathor.network/transaction/' . self::HEX_HASH ),
		);
	}

	/** @dataProvider explorer_links */
	public function test_links_each_protocol_to_its_explorer( string $protocol, string $hash, string $network, string $url ): void {
		$this->assertSame( $url, ( new \Cryptum_Bridge_Explorer() )->transaction_url( $protocol, $hash, $network ) );
		$this->assertStringContainsString( 'href="' . esc_url( $url ) . '"', $this->html( array( array( 'protocol' => $protocol, 'hash' => $hash ) ), $network ) );
	}

	public function unlinked(): array {
		return array(
			'unknown protocol'         => array( 'DOGECOIN', self::HEX_HASH ),
			'EVM hash without 0x'      => array( 'CELO', self::HEX_HASH ),
			'too short'                => array( 'ETHEREUM', '0x7a9c' ),
			'trailing newline'         => array( 'ETHEREUM', self::EVM_HASH . "\n" ),
			'path traversal'           => array( 'BITCOIN', '../../admin' ),
			'markup'                   => array( 'ETHEREUM', '0x"><script>alert(1)</script>' ),
			'javascript'               => array( 'SOLANA', 'javascript:alert(1)' ),
			'base58 with 0 and l'      => array( 'SOLANA', str_repeat( '0l', 40 ) ),
		);
	}

	/** @dataProvider unlinked */
	public function test_shows_a_bad_hash_or_unknown_protocol_without_a_link( string $protocol, string $hash ): void {
		$this->assertNull( ( new \Cryptum_Bridge_Explorer() )->transaction_url( $protocol, $hash, 'production' ) );

		$html = $this->html( array( array( 'protocol' => $protocol, 'hash' => $hash ) ) );

		$this->assertStringNotContainsString( '<a ', $html );
		$this->assertStringContainsString( '<code style="word-break: break-all">' . esc_html( $hash ) . '</code>', $html );
	}

	public function hostile_values(): array {
		return array(
			'script in the hash'     => array( 'CELO', '<script>alert(1)</script>' ),
			'quotes in the hash'     => array( 'CELO', '0x" onmouseover="alert(1)' ),
			'script in the protocol' => array( '<script>alert("p")</script>', self::EVM_HASH ),
			'quotes in the protocol' => array( "CELO' onclick='x", self::EVM_HASH ),
			'ampersand'              => array( 'A&B', 'x&y' ),
		);
	}

	/** @dataProvider hostile_values */
	public function test_escapes_every_value_from_the_order( string $protocol, string $hash ): void {
		$html = $this->html( array( array( 'protocol' => $protocol, 'hash' => $hash ) ) );

		$this->assertStringNotContainsString( '<script', $html );
		$this->assertStringNotContainsString( '" on', $html );
		$this->assertStringNotContainsString( "' on", $html );
		$this->assertStringContainsString( '<strong>' . htmlspecialchars( $protocol, ENT_QUOTES ) . '</strong>', $html );
		$this->assertStringContainsString( htmlspecialchars( $hash, ENT_QUOTES ) . '</code>', $html );
	}

	public function meta_values(): array {
		$one = array(
			'protocol' => 'CELO',
			'hash'     => self::EVM_HASH,
		);
		return array(
			'JSON string'     => array( wp_json_encode( array( $one ) ), array( $one ) ),
			'array'           => array( array( $one ), array( $one ) ),
			'missing'         => array( '', array() ),
			'not JSON'        => array( '{oops', array() ),
			'not a list'      => array( '"CELO"', array() ),
			'malformed items' => array( wp_json_encode( array( 'x', array( 'protocol' => 'CELO' ), array( 'protocol' => 1, 'hash' => 'h' ), $one ) ), array( $one ) ),
		);
	}

	/** @dataProvider meta_values */
	public function test_reads_the_reference_plugins_meta( $meta, array $expected ): void {
		$this->assertSame( $expected, \Cryptum_Bridge_Order_Meta_Box::transactions( $meta ) );
	}

	public function test_no_transactions_yet(): void {
		$this->assertSame( '<p>No transactions recorded for this payment yet.</p>', $this->box()->html( array() ) );
	}

	public function screens(): array {
		return array(
			'HPOS'   => array( 'woocommerce_page_wc-orders', new \WC_Order( 12, 'cryptumcheckout_gateway' ) ),
			'legacy' => array( 'shop_order', new \WP_Post( 12 ) ),
		);
	}

	/** @dataProvider screens */
	public function test_appears_on_the_hpos_and_the_legacy_order_screen( string $screen, $object ): void {
		cryptum_stub_add_order(
			new \WC_Order( 12, 'cryptumcheckout_gateway', array( '_cryptum_checkout_order_transactions' => wp_json_encode( array( array( 'protocol' => 'CELO', 'hash' => self::EVM_HASH ) ) ) ) )
		);
		$box = $this->box();
		$box->register();

		do_action( 'add_meta_boxes', $screen, $object );

		$this->assertCount( 1, $GLOBALS['cryptum_stub']['meta_boxes'] );
		$added = $GLOBALS['cryptum_stub']['meta_boxes'][0];
		$this->assertSame( $screen, $added['screen'] );
		$this->assertSame( 'side', $added['context'] );

		ob_start();
		call_user_func( $added['callback'], $object instanceof \WC_Order ? wc_get_order( 12 ) : $object );
		$this->assertStringContainsString( 'https://celoscan.io/tx/' . self::EVM_HASH, ob_get_clean() );
	}

	public function not_shown(): array {
		return array(
			'another gateway'     => array( 'woocommerce_page_wc-orders', new \WC_Order( 3, 'bacs' ) ),
			'another screen'      => array( 'product', new \WC_Order( 3, 'cryptumcheckout_gateway' ) ),
			'no order behind it'  => array( 'shop_order', new \WP_Post( 404 ) ),
		);
	}

	/** @dataProvider not_shown */
	public function test_stays_off_other_screens_and_other_gateways_orders( string $screen, $object ): void {
		cryptum_stub_add_order( new \WC_Order( 3, 'bacs' ) );
		$this->box()->register();

		do_action( 'add_meta_boxes', $screen, $object );

		$this->assertSame( array(), $GLOBALS['cryptum_stub']['meta_boxes'] );
	}
}
