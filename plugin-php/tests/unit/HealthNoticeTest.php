<?php
/**
 * The admin notices: the bridge's /readyz (unreachable, not ready, something else answering),
 * the cache and its reset on save, and direct mode without a public URL.
 *
 * @package Cryptum_Bridge
 */

namespace Cryptum_Bridge\Tests;

final class HealthNoticeTest extends TestCase {

	/** A bridge URL with an ampersand, so escaping shows. */
	const BRIDGE  = 'http://127.0.0.1:8787/?a=1&b=2';
	const READYZ  = self::BRIDGE . '/readyz';
	const PRINTED = '<code>http://127.0.0.1:8787/?a=1&amp;b=2/readyz</code>';

	private function notice( array $constants = array( 'CRYPTUM_BRIDGE_URL' => self::BRIDGE ) ): \Cryptum_Bridge_Health_Notice {
		$notice = new \Cryptum_Bridge_Health_Notice( $this->settings( $constants ) );
		$notice->register();
		return $notice;
	}

	private function render( array $constants = array( 'CRYPTUM_BRIDGE_URL' => self::BRIDGE ) ): string {
		$this->notice( $constants );
		ob_start();
		do_action( 'admin_notices' );
		return ob_get_clean();
	}

	private function cache( string $url, string $state, int $status = 0, array $reasons = array() ): void {
		set_transient( 'cryptum_bridge_health', compact( 'url', 'state', 'status', 'reasons' ), 60 );
	}

	public function test_an_unreachable_bridge_gets_the_start_command_and_the_settings_link(): void {
		$GLOBALS['cryptum_stub']['can'] = array( 'manage_woocommerce' );
		cryptum_stub_respond( new \WP_Error( 'http_request_failed', 'cURL error 7: Connection refused' ) );

		$html = $this->render();

		$this->assertStringStartsWith( '<div class="notice notice-error"><p>Cryptum Bridge: the bridge does not answer at ' . self::PRINTED . '.', $html );
		$this->assertStringContainsString( 'What to do: start the daemon: <code>sudo systemctl start cryptum-bridge</code>, and check the bridge URL in the <a href="' . self::settings_href() . '">Cryptum Bridge settings</a>.', $html );
		$request = $GLOBALS['cryptum_stub']['requests'][0];
		$this->assertSame( array( 'GET', self::READYZ ), array( $request['method'], $request['url'] ) );
		$this->assertLessThanOrEqual( 2, $request['args']['timeout'] );
		$this->assertSame( 0, $request['args']['redirection'] );
		$this->assertSame(
			array(
				'value'      => array(
					'url'     => self::READYZ,
					'state'   => 'unreachable',
					'status'  => 0,
					'reasons' => array(),
				),
				'expiration' => 60,
			),
			$GLOBALS['cryptum_stub']['transients']['cryptum_bridge_health']
		);
	}

	public function not_ready(): array {
		return array(
			'disk full'               => array(
				'{"status": "unavailable", "reasons": ["storage: database or disk is full"]}',
				'<li>storage: database or disk is full</li>',
			),
			'several, markup escaped' => array(
				'{"status": "unavailable", "reasons": ["storage: the last callback could not be stored (disk I/O error)", "<script>alert(1)</script> & \"x\""]}',
				'<li>storage: the last callback could not be stored (disk I/O error)</li><li>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;</li>',
			),
			'non-strings skipped'     => array(
				'{"status": "unavailable", "reasons": [1, {"a": "b"}, "  ", "workers: stopped"]}',
				'<li>workers: stopped</li>',
			),
			'no reasons given'        => array(
				'{"status": "unavailable"}',
				'<li>no reason given</li>',
			),
		);
	}

	/** @dataProvider not_ready */
	public function test_a_bridge_that_is_up_but_not_ready_shows_its_reasons_escaped( string $body, string $items ): void {
		cryptum_stub_respond( 503, $body );

		$html = $this->render();

		$this->assertStringStartsWith( '<div class="notice notice-error"><p>Cryptum Bridge: the bridge at ' . self::PRINTED . ' is running but not ready, so it refuses Cryptum payment callbacks', $html );
		$this->assertStringContainsString( '<ul class="ul-disc">' . $items . '</ul>', $html );
		$this->assertStringContainsString( '<code>journalctl -u cryptum-bridge</code>', $html );
		$this->assertStringContainsString( '<a href="' . self::settings_href() . '">Cryptum Bridge settings</a>', $html );
		$this->assertStringNotContainsString( '<script', $html );
		$this->assertStringNotContainsString( 'systemctl start', $html ); // It is running: starting it is not the fix.
		$this->assertSame( 'not_ready', get_transient( 'cryptum_bridge_health' )['state'] );
	}

	public function test_reasons_are_capped_in_number_and_length(): void {
		$long    = str_repeat( 'é', 400 );
		$reasons = \Cryptum_Bridge_Health_Notice::reasons( array_fill( 0, 15, $long ) );

		$this->assertCount( 10, $reasons );
		$this->assertSame( str_repeat( 'é', 300 ) . '…', $reasons[0] );
		$this->assertSame( array( 'short' ), \Cryptum_Bridge_Health_Notice::reasons( array( ' short ', "\xff\xfe" ) ) );
	}

	public function something_else(): array {
		return array(
			'a web page'                   => array( 404, '<html>Not Found</html>' ),
			'a server error'               => array( 500, '' ),
			'a 503 that is not the bridge' => array( 503, '<html>Service Unavailable</html>' ),
			'WordPress\'s own relay'       => array( 503, '{"error":"bridge_unreachable"}' ),
		);
	}

	/** @dataProvider something_else */
	public function test_something_else_answering_at_the_url_is_named_with_its_status( int $status, string $body ): void {
		cryptum_stub_respond( $status, $body );

		$html = $this->render();

		$this->assertStringStartsWith( '<div class="notice notice-error"><p>Cryptum Bridge: ' . self::PRINTED . ' answered HTTP ' . $status . ', which is not the bridge&#039;s answer', $html );
		$this->assertStringContainsString( 'What to do: check the bridge URL in the <a href="' . self::settings_href() . '">', $html );
		$this->assertStringNotContainsString( '<ul', $html );
	}

	public function test_no_notice_when_readyz_answers_200(): void {
		cryptum_stub_respond( 200, '{"status": "ready"}' );

		$this->assertSame( '', $this->render() );
		$this->assertSame( 'ready', get_transient( 'cryptum_bridge_health' )['state'] );
	}

	public function cached(): array {
		return array(
			'ready'       => array( 'ready', 200, array(), '' ),
			'unreachable' => array( 'unreachable', 0, array(), 'does not answer at' ),
			'not ready'   => array( 'not_ready', 503, array( 'storage: disk full' ), '<li>storage: disk full</li>' ),
		);
	}

	/** @dataProvider cached */
	public function test_a_cached_result_for_the_same_url_is_used_without_asking_the_bridge( string $state, int $status, array $reasons, string $expected ): void {
		$this->cache( self::READYZ, $state, $status, $reasons );

		$html = $this->render();

		$this->assertSame( array(), $GLOBALS['cryptum_stub']['requests'] );
		'' === $expected ? $this->assertSame( '', $html ) : $this->assertStringContainsString( $expected, $html );
	}

	public function test_a_cached_result_for_another_url_is_not_used(): void {
		$this->cache( 'http://127.0.0.1:9999/readyz', 'unreachable' );
		cryptum_stub_respond( 200, '{"status": "ready"}' );

		$this->assertSame( '', $this->render() );
		$this->assertSame( self::READYZ, $GLOBALS['cryptum_stub']['requests'][0]['url'] );
	}

	public function test_saving_the_settings_forgets_the_cached_check(): void {
		$this->notice();
		$this->cache( self::READYZ, 'unreachable' );
		set_transient( 'unrelated', 'kept', 60 );

		do_action( 'woocommerce_update_options_advanced_cryptum_bridge' ); // As WooCommerce after saving the section.

		$this->assertFalse( get_transient( 'cryptum_bridge_health' ) );
		$this->assertSame( 'kept', get_transient( 'unrelated' ) );
		cryptum_stub_respond( 200, '{"status": "ready"}' );
		ob_start();
		do_action( 'admin_notices' );
		$this->assertSame( '', ob_get_clean() );
		$this->assertCount( 1, $GLOBALS['cryptum_stub']['requests'] );
	}

	public function not_managers(): array {
		return array(
			'no capabilities'          => array( false ),
			'an editor, not a manager' => array( array( 'edit_posts', 'edit_shop_orders' ) ),
		);
	}

	/** @dataProvider not_managers */
	public function test_only_shop_managers_see_it_and_nobody_else_waits_for_the_check( $can ): void {
		$GLOBALS['cryptum_stub']['can'] = $can;
		update_option( 'cryptum_bridge_mode', 'direct' );

		$this->assertSame( '', $this->render() );
		$this->assertSame( array(), $GLOBALS['cryptum_stub']['requests'] );
	}

	public function direct_mode(): array {
		return array(
			'direct, no public URL'       => array( 'direct', '', true ),
			'direct, unusable public URL' => array( 'direct', 'ftp://pay.example.com/callbacks/cryptum', true ),
			'direct, public URL'          => array( 'direct', 'https://pay.example.com/callbacks/cryptum', false ),
			'relay, no public URL'        => array( 'relay', '', false ),
		);
	}

	/** @dataProvider direct_mode */
	public function test_direct_mode_without_a_public_url_warns( string $mode, string $public_url, bool $warned ): void {
		$GLOBALS['cryptum_stub']['can'] = array( 'manage_woocommerce' );
		update_option( 'cryptum_bridge_mode', $mode );
		update_option( 'cryptum_bridge_public_url', $public_url );
		cryptum_stub_respond( 200, '{"status": "ready"}' );

		$html = $this->render();

		if ( ! $warned ) {
			$this->assertSame( '', $html );
			return;
		}
		$this->assertStringStartsWith( '<div class="notice notice-warning"><p>Cryptum Bridge: direct mode is on, but there is no usable public callback URL', $html );
		$this->assertStringContainsString( 'What to do: set the public callback URL', $html );
		$this->assertStringContainsString( '<a href="' . self::settings_href() . '">Cryptum Bridge settings</a>', $html );
		$this->assertStringNotContainsString( 'notice-error', $html ); // The bridge itself is ready.
	}

	public function test_direct_mode_set_by_constant_warns_too(): void {
		cryptum_stub_respond( 200, '{"status": "ready"}' );

		$html = $this->render(
			array(
				'CRYPTUM_BRIDGE_URL'  => self::BRIDGE,
				'CRYPTUM_BRIDGE_MODE' => 'direct',
			)
		);

		$this->assertStringContainsString( 'notice-warning', $html );
	}
}
