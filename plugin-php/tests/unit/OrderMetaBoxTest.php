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
		$this->assertStringContainsString( '<code style="word-break: break-all">' . esc_html( $hash ) . '</code> <span class="description">(no explorer link', $html );
	}

	public function why_unlinked(): array {
		return array(
			'unknown chain'            => array( 'DOGECOIN', self::HEX_HASH, '(no explorer link for this chain)' ),
			'unknown chain, any case'  => array( 'Tron', self::HEX_HASH, '(no explorer link for this chain)' ),
			'known chain, odd hash'    => array( 'CELO', self::HEX_HASH, '(no explorer link: not a transaction hash of this chain&#039;s format)' ),
			'known in lower case'      => array( 'bitcoin', '0x7a9c', '(no explorer link: not a transaction hash of this chain&#039;s format)' ),
		);
	}

	/** @dataProvider why_unlinked */
	public function test_says_plainly_why_a_hash_has_no_link( string $protocol, string $hash, string $reason ): void {
		$html = $this->html( array( array( 'protocol' => $protocol, 'hash' => $hash ) ) );

		$this->assertStringContainsString( esc_html( $hash ) . '</code> <span class="description">' . $reason . '</span></li>', $html );
	}

	public function test_a_linked_hash_has_no_excuse(): void {
		$this->assertStringNotContainsString( 'no explorer link', $this->html( array( array( 'protocol' => 'CELO', 'hash' => self::EVM_HASH ) ) ) );
	}

	public function order_details(): array {
		return array(
			'plain'                => array( 'a1b2c3d4-0000-4000-8000-000000000001', 'Payment confirmed', '<code style="word-break: break-all">a1b2c3d4-0000-4000-8000-000000000001</code>', 'Payment confirmed' ),
			'markup in both'       => array( '<img src=x onerror=alert(1)>', '<script>alert("m")</script> & more', '<code style="word-break: break-all">&lt;img src=x onerror=alert(1)&gt;</code>', '&lt;script&gt;alert(&quot;m&quot;)&lt;/script&gt; &amp; more' ),
			'a number as order id' => array( 12345, 'ok', '<code style="word-break: break-all">12345</code>', 'ok' ),
		);
	}

	/** @dataProvider order_details */
	public function test_shows_the_cryptum_order_id_and_message_escaped( $order_id, string $message, string $order_id_html, string $message_html ): void {
		$order = new \WC_Order(
			12,
			'cryptumcheckout_gateway',
			array(
				'_cryptum_order_id'                             => $order_id,
				'_cryptum_checkout_order_transactions_message' => $message,
				'_cryptum_checkout_order_transactions'         => wp_json_encode( array( array( 'protocol' => 'CELO', 'hash' => self::EVM_HASH ) ) ),
			)
		);

		ob_start();
		$this->box()->render( $order );
		$html = ob_get_clean();

		$this->assertStringContainsString( '<p class="cryptum-bridge-order-id"><strong>Cryptum order</strong><br>' . $order_id_html, $html );
		$this->assertStringContainsString( '<p class="cryptum-bridge-message"><strong>Message</strong><br>' . $message_html . '</p>', $html );
		$this->assertStringNotContainsString( '<script', $html );
		$this->assertStringNotContainsString( '<img', $html );
		$this->assertStringContainsString( 'https://celoscan.io/tx/' . self::EVM_HASH, $html );
	}

	public function test_without_an_order_id_or_message_neither_is_shown(): void {
		ob_start();
		$this->box()->render( new \WC_Order( 12, 'cryptumcheckout_gateway', array( '_cryptum_order_id' => array( 'not', 'text' ) ) ) );
		$html = ob_get_clean();

		$this->assertSame( '<p>No transactions recorded for this payment yet.</p>', $html );
	}

	public function test_an_order_id_shows_even_before_any_transaction(): void {
		$this->assertSame(
			'<p class="cryptum-bridge-order-id"><strong>Cryptum order</strong><br><code style="word-break: break-all">ord-1</code></p><p>No transactions recorded for this payment yet.</p>',
			$this->box()->html( array(), 'ord-1' )
		);
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
		$this->assertSame( array( 'side', 'high' ), array( $added['context'], $added['priority'] ) );

		ob_start();
		call_user_func( $added['callback'], $object instanceof \WC_Order ? wc_get_order( 12 ) : $object );
		$this->assertStringContainsString( 'https://celoscan.io/tx/' . self::EVM_HASH, ob_get_clean() );
	}

	public function test_appears_for_an_order_that_has_only_a_cryptum_order_id(): void {
		$order = new \WC_Order( 5, 'bacs', array( '_cryptum_order_id' => 'ord-5' ) );
		$this->box()->register();

		do_action( 'add_meta_boxes', 'woocommerce_page_wc-orders', $order );

		$this->assertCount( 1, $GLOBALS['cryptum_stub']['meta_boxes'] );
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
