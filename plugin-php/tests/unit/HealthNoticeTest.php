<?php
/**
 * The admin notice when the bridge's /healthz fails, cached so admin pages do not wait.
 *
 * @package Cryptum_Bridge
 */

namespace Cryptum_Bridge\Tests;

final class HealthNoticeTest extends TestCase {

	private function render(): string {
		$notice = new \Cryptum_Bridge_Health_Notice( $this->settings( array( 'CRYPTUM_BRIDGE_URL' => 'http://127.0.0.1:8787/?a=1&b=2' ) ) );
		$notice->register();
		ob_start();
		do_action( 'admin_notices' );
		return ob_get_clean();
	}

	public function failures(): array {
		return array(
			'unreachable'  => array( new \WP_Error( 'http_request_failed', 'Connection refused' ) ),
			'answers 500'  => array( 500 ),
			'answers 503'  => array( 503 ),
			'answers 404'  => array( 404 ),
		);
	}

	/** @dataProvider failures */
	public function test_shows_a_notice_when_healthz_fails( $answer ): void {
		cryptum_stub_respond( $answer, '' );

		$html = $this->render();

		$this->assertStringStartsWith( '<div class="notice notice-error"><p>Cryptum Bridge: the bridge does not answer at ', $html );
		$this->assertStringContainsString( 'http://127.0.0.1:8787/?a=1&amp;b=2/healthz', $html ); // Escaped.
		$request = $GLOBALS['cryptum_stub']['requests'][0];
		$this->assertSame( array( 'GET', 'http://127.0.0.1:8787/?a=1&b=2/healthz' ), array( $request['method'], $request['url'] ) );
		$this->assertLessThanOrEqual( 2, $request['args']['timeout'] );
		$this->assertSame( array( 'value' => 'down', 'expiration' => 60 ), $GLOBALS['cryptum_stub']['transients']['cryptum_bridge_health'] );
	}

	public function test_no_notice_when_healthz_answers_200(): void {
		cryptum_stub_respond( 200, '{"status": "ok"}' );

		$this->assertSame( '', $this->render() );
		$this->assertSame( 'up', get_transient( 'cryptum_bridge_health' ) );
	}

	public function cached(): array {
		return array(
			'cached up'   => array( 'up', '' ),
			'cached down' => array( 'down', 'notice-error' ),
		);
	}

	/** @dataProvider cached */
	public function test_a_cached_result_is_used_without_asking_the_bridge( string $cached, string $expected ): void {
		set_transient( 'cryptum_bridge_health', $cached, 60 );

		$html = $this->render();

		$this->assertSame( array(), $GLOBALS['cryptum_stub']['requests'] );
		'' === $expected ? $this->assertSame( '', $html ) : $this->assertStringContainsString( $expected, $html );
	}

	public function test_only_shop_managers_see_it_and_nobody_else_waits_for_the_check(): void {
		$GLOBALS['cryptum_stub']['can'] = false;

		$this->assertSame( '', $this->render() );
		$this->assertSame( array(), $GLOBALS['cryptum_stub']['requests'] );
	}
}
