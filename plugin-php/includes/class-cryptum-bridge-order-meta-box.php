<?php
/**
 * The order screen's "Cryptum payment" box: the Cryptum order id, the payment's
 * message, and its transactions with explorer links.
 *
 * Reads the reference plugin's order meta (which the bridge writes too):
 * `_cryptum_order_id`, `_cryptum_checkout_order_transactions_message` and
 * `_cryptum_checkout_order_transactions` (a JSON list of {protocol, hash}); it
 * never writes to the order.
 *
 * @package Cryptum_Bridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Shows a Cryptum payment's transactions on the HPOS and the legacy order screens.
 */
final class Cryptum_Bridge_Order_Meta_Box {

	const GATEWAY_ID       = 'cryptumcheckout_gateway';
	const META_KEY         = '_cryptum_checkout_order_transactions';
	const ORDER_ID_META    = '_cryptum_order_id';
	const MESSAGE_META_KEY = '_cryptum_checkout_order_transactions_message';

	/** @var Cryptum_Bridge_Settings */
	private $settings;

	/** @var Cryptum_Bridge_Explorer */
	private $explorer;

	public function __construct( Cryptum_Bridge_Settings $settings, Cryptum_Bridge_Explorer $explorer ) {
		$this->settings = $settings;
		$this->explorer = $explorer;
	}

	public function register(): void {
		add_action( 'add_meta_boxes', array( $this, 'add' ), 10, 2 );
	}

	/** The order screens' ids: HPOS (`woocommerce_page_wc-orders`) and legacy (`shop_order`). */
	public static function screens(): array {
		$screens = array( 'shop_order' );
		if ( function_exists( 'wc_get_page_screen_id' ) ) {
			$screens[] = wc_get_page_screen_id( 'shop-order' );
		}
		return array_values( array_unique( $screens ) );
	}

	/**
	 * Adds the box on an order screen, for orders paid (or being paid) with Cryptum.
	 *
	 * @param string $screen_id     The screen id or post type.
	 * @param mixed  $post_or_order WP_Post on the legacy screen, WC_Order with HPOS.
	 */
	public function add( $screen_id, $post_or_order = null ): void {
		$order = self::order_of( $post_or_order );
		if ( ! in_array( $screen_id, self::screens(), true ) || ! $order ) {
			return;
		}
		if ( self::GATEWAY_ID !== $order->get_payment_method() && '' === $order->get_meta( self::META_KEY ) && '' === self::text( $order->get_meta( self::ORDER_ID_META ) ) ) {
			return;
		}
		// Beside the order's status and actions, near the top, where it is seen.
		add_meta_box(
			'cryptum-bridge-transactions',
			__( 'Cryptum payment', 'cryptum-bridge' ),
			array( $this, 'render' ),
			$screen_id,
			'side',
			'high'
		);
	}

	/**
	 * Prints the box.
	 *
	 * @param mixed $post_or_order WP_Post or WC_Order.
	 */
	public function render( $post_or_order ): void {
		$order = self::order_of( $post_or_order );
		if ( ! $order ) {
			return;
		}
		echo $this->html( // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- html() escapes every value.
			self::transactions( $order->get_meta( self::META_KEY ) ),
			self::text( $order->get_meta( self::ORDER_ID_META ) ),
			self::text( $order->get_meta( self::MESSAGE_META_KEY ) )
		);
	}

	/**
	 * The box's markup; every value from the order is escaped, and only hashes of a known shape are linked.
	 *
	 * @param array<int, array{protocol: string, hash: string}> $transactions     From transactions().
	 * @param string                                            $cryptum_order_id The Cryptum order id, '' if unknown.
	 * @param string                                            $message          The payment's message from Cryptum, '' if none.
	 */
	public function html( array $transactions, string $cryptum_order_id = '', string $message = '' ): string {
		$html = '';
		if ( '' !== $cryptum_order_id ) {
			$html .= sprintf( '<p class="cryptum-bridge-order-id"><strong>%s</strong><br><code style="word-break: break-all">%s</code></p>', esc_html__( 'Cryptum order', 'cryptum-bridge' ), esc_html( $cryptum_order_id ) );
		}
		if ( '' !== $message ) {
			$html .= sprintf( '<p class="cryptum-bridge-message"><strong>%s</strong><br>%s</p>', esc_html__( 'Message', 'cryptum-bridge' ), esc_html( $message ) );
		}
		if ( ! $transactions ) {
			return $html . '<p>' . esc_html__( 'No transactions recorded for this payment yet.', 'cryptum-bridge' ) . '</p>';
		}
		$network = $this->settings->network();
		$items   = '';
		foreach ( $transactions as $transaction ) {
			$hash = '<code style="word-break: break-all">' . esc_html( $transaction['hash'] ) . '</code>';
			$url  = $this->explorer->transaction_url( $transaction['protocol'], $transaction['hash'], $network );
			if ( null !== $url ) {
				$hash = sprintf(
					'<a href="%s" target="_blank" rel="noopener noreferrer" title="%s">%s</a>',
					esc_url( $url ),
					esc_attr__( 'Open in a block explorer', 'cryptum-bridge' ),
					$hash
				);
			} elseif ( ! $this->explorer->knows( $transaction['protocol'] ) ) {
				$hash .= ' <span class="description">' . esc_html__( '(no explorer link for this chain)', 'cryptum-bridge' ) . '</span>';
			} else {
				$hash .= ' <span class="description">' . esc_html__( '(no explorer link: not a transaction hash of this chain\'s format)', 'cryptum-bridge' ) . '</span>';
			}
			$items .= sprintf( '<li><strong>%s</strong><br>%s</li>', esc_html( $transaction['protocol'] ), $hash );
		}
		return $html . '<ul class="cryptum-bridge-transactions">' . $items . '</ul>';
	}

	/**
	 * A meta value as trimmed text; '' for a missing or non-scalar value.
	 *
	 * @param mixed $meta The meta value.
	 */
	public static function text( $meta ): string {
		return is_scalar( $meta ) && ! is_bool( $meta ) ? trim( (string) $meta ) : '';
	}

	/**
	 * The well-formed {protocol, hash} entries of the meta value; malformed ones are skipped.
	 *
	 * @param mixed $meta The meta value: a JSON string (as the reference plugin stores it) or an array.
	 * @return array<int, array{protocol: string, hash: string}>
	 */
	public static function transactions( $meta ): array {
		$list = is_string( $meta ) ? json_decode( $meta, true ) : $meta;
		$list = is_array( $list ) ? $list : array();
		$kept = array();
		foreach ( $list as $entry ) {
			if ( is_array( $entry ) && isset( $entry['protocol'], $entry['hash'] ) && is_string( $entry['protocol'] ) && is_string( $entry['hash'] ) ) {
				$kept[] = array(
					'protocol' => $entry['protocol'],
					'hash'     => $entry['hash'],
				);
			}
		}
		return $kept;
	}

	/**
	 * The order behind a screen's object.
	 *
	 * @param mixed $post_or_order WP_Post, WC_Order or null.
	 * @return WC_Order|null
	 */
	private static function order_of( $post_or_order ) {
		if ( $post_or_order instanceof WC_Order ) {
			return $post_or_order;
		}
		if ( is_object( $post_or_order ) && isset( $post_or_order->ID ) ) {
			$order = wc_get_order( $post_or_order->ID );
			return $order instanceof WC_Order ? $order : null;
		}
		return null;
	}
}
