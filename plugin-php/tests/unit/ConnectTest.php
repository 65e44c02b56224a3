<?php
/**
 * The connect button: the key row WooCommerce would write, the one-time notice,
 * revoking only the plugin's own key, and the refusals.
 *
 * @package Cryptum_Bridge
 */

namespace Cryptum_Bridge\Tests;

final class ConnectTest extends TestCase {

	const TABLE  = 'wp_woocommerce_api_keys';
	const CREATE = 'cryptum_bridge_create_key';
	const REVOKE = 'cryptum_bridge_revoke_key';
	const NOTICE = 'cryptum_bridge_key_notice_7'; // The stubs' current user is 7.

	/** @var int */
	private $terminations = 0;

	private function connect(): \Cryptum_Bridge_Connect {
		$connect = new \Cryptum_Bridge_Connect(
			function () {
				++$this->terminations;
				throw new Terminated();
			}
		);
		$connect->register();
		return $connect;
	}

	/**
	 * Posts a button's form as admin-post.php dispatches it; the wp_die() that refused it, or null.
	 *
	 * @param string      $action The form's `action`.
	 * @param string|null $nonce  The posted nonce: 'valid' for the action's own, null for none.
	 * @param string      $method The request method.
	 * @param string      $field  The nonce's field.
	 */
	private function post( string $action, ?string $nonce = 'valid', string $method = 'POST', string $field = 'cryptum_bridge_nonce' ): ?\Cryptum_Stub_Died {
		$this->connect();
		$_SERVER['REQUEST_METHOD'] = $method;
		$_POST                     = array( 'action' => $action );
		if ( null !== $nonce ) {
			$_POST[ $field ] = 'valid' === $nonce ? wp_create_nonce( $action ) : $nonce;
		}
		$_REQUEST = $_POST;
		try {
			do_action( 'admin_post_' . $action );
		} catch ( \Cryptum_Stub_Died $died ) {
			return $died;
		} catch ( Terminated $stopped ) {
			$this->assertSame( array( array( 'https://shop.example.com/wp-admin/admin.php?page=wc-settings&tab=advanced&section=cryptum_bridge', 302 ) ), $GLOBALS['cryptum_stub']['redirects'] );
			return null;
		}
		$this->fail( 'the handler neither redirected nor died' );
	}

	private function notice_left(): array {
		return get_transient( self::NOTICE );
	}

	private function render_notices(): string {
		ob_start();
		do_action( 'admin_notices' );
		return ob_get_clean();
	}

	public function test_create_inserts_a_read_write_key_exactly_as_woocommerce_does(): void {
		$GLOBALS['cryptum_stub']['can'] = array( 'manage_woocommerce' ); // A shop manager, nothing more.

		$this->assertNull( $this->post( self::CREATE ) );

		$notice = $this->notice_left();
		$key    = $notice['consumer_key'];
		$secret = $notice['consumer_secret'];
		$this->assertMatchesRegularExpression( '/^ck_[0-9a-f]{40}$/D', $key );
		$this->assertMatchesRegularExpression( '/^cs_[0-9a-f]{40}$/D', $secret );

		$calls = $GLOBALS['wpdb']->calls;
		$this->assertCount( 1, $calls );
		list( $method, $table, $row, $formats ) = $calls[0];
		$this->assertSame( array( 'insert', self::TABLE ), array( $method, $table ) );
		$this->assertSame(
			array(
				'user_id'         => 7,
				'description'     => 'cryptum-bridge',
				'permissions'     => 'read_write',
				'consumer_key'    => hash_hmac( 'sha256', $key, 'wc-api' ), // Never the plain key.
				'consumer_secret' => $secret,
				'truncated_key'   => substr( $key, -7 ),
			),
			$row
		);
		$this->assertSame( array( '%d', '%s', '%s', '%s', '%s', '%s' ), $formats );
		$this->assertSame( 1, $this->terminations );
	}

	public function test_create_remembers_the_row_id_and_never_the_key_or_secret(): void {
		$GLOBALS['wpdb']->add_row( self::TABLE, array( 'truncated_key' => 'someone' ) ); // Id 41: another key.

		$this->post( self::CREATE );

		$notice = $this->notice_left();
		$this->assertSame(
			array(
				'key_id'        => 42,
				'truncated_key' => substr( $notice['consumer_key'], -7 ),
				'user_id'       => 7,
			),
			get_option( 'cryptum_bridge_api_key' )
		);
		$options = serialize( $GLOBALS['cryptum_stub']['options'] );
		$this->assertStringNotContainsString( $notice['consumer_key'], $options );
		$this->assertStringNotContainsString( $notice['consumer_secret'], $options );
		$this->assertStringNotContainsString( substr( $notice['consumer_secret'], 3 ), $options );
	}

	public function test_the_key_is_shown_once_to_its_creator_with_the_lines_to_paste(): void {
		$GLOBALS['cryptum_stub']['can'] = array( 'manage_woocommerce' );
		$this->post( self::CREATE );
		$notice = $this->notice_left();
		$this->assertGreaterThan( 0, $GLOBALS['cryptum_stub']['transients'][ self::NOTICE ]['expiration'] );
		$this->assertLessThanOrEqual( 600, $GLOBALS['cryptum_stub']['transients'][ self::NOTICE ]['expiration'] );

		$html = $this->render_notices();

		$key    = $notice['consumer_key'];
		$secret = $notice['consumer_secret'];
		$this->assertStringStartsWith( '<div class="notice notice-success">', $html );
		$this->assertStringContainsString(
			esc_html( "woocommerce.url = \"https://shop.example.com\"\nwoocommerce.consumer_key = \"$key\"\nwoocommerce.consumer_secret = \"$secret\"" ),
			$html
		);
		$this->assertStringContainsString(
			esc_html( "install -d -m 700 '/etc/cryptum-bridge/credentials' && printf '%s' '$key' | install -m 600 /dev/stdin '/etc/cryptum-bridge/credentials/woocommerce_consumer_key' && printf '%s' '$secret' | install -m 600 /dev/stdin '/etc/cryptum-bridge/credentials/woocommerce_consumer_secret'" ),
			$html
		);
		$this->assertStringContainsString( esc_html( "woocommerce.consumer_key_file = \"woocommerce_consumer_key\"\nwoocommerce.consumer_secret_file = \"woocommerce_consumer_secret\"" ), $html );
		$this->assertFalse( get_transient( self::NOTICE ) );

		$this->assertSame( '', $this->render_notices() ); // The next page: gone.
	}

	public function test_another_user_never_sees_the_key(): void {
		$this->post( self::CREATE );
		$GLOBALS['cryptum_stub']['user_id'] = 8;

		$this->assertSame( '', $this->render_notices() );
		$this->assertIsArray( get_transient( self::NOTICE ) ); // Still waiting for user 7.
	}

	public function test_a_user_who_lost_the_capability_meanwhile_sees_nothing_and_the_key_is_dropped(): void {
		$this->post( self::CREATE );
		$GLOBALS['cryptum_stub']['can'] = array( 'read' );

		$this->assertSame( '', $this->render_notices() );
		$this->assertFalse( get_transient( self::NOTICE ) );
	}

	public function test_the_notice_escapes_the_home_url(): void {
		$GLOBALS['cryptum_stub']['home'] = 'https://shop.example.com/"><script>alert(1)</script>\\';
		$this->post( self::CREATE );

		$html = $this->render_notices();

		$this->assertStringNotContainsString( '<script', $html );
		$this->assertStringContainsString( 'woocommerce.url = &quot;https://shop.example.com/\\&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\\\\&quot;', $html );
	}

	public function test_create_refuses_a_second_key_while_one_is_remembered(): void {
		update_option( 'cryptum_bridge_api_key', array( 'key_id' => 41, 'truncated_key' => 'abc1234', 'user_id' => 7 ) );

		$this->post( self::CREATE );

		$this->assertSame( array(), $GLOBALS['wpdb']->calls );
		$this->assertSame( array( 'status' => 'exists' ), $this->notice_left() );
		$this->assertStringContainsString( 'Revoke it first', $this->render_notices() );
	}

	public function test_a_failed_insert_remembers_nothing_and_shows_no_key(): void {
		$GLOBALS['wpdb']->fail = true;

		$this->post( self::CREATE );

		$this->assertFalse( get_option( 'cryptum_bridge_api_key' ) );
		$this->assertSame( array( 'status' => 'create_failed' ), $this->notice_left() );
		$this->assertStringStartsWith( '<div class="notice notice-error">', $this->render_notices() );
	}

	public function test_revoke_deletes_the_key_it_created_and_no_other(): void {
		$GLOBALS['cryptum_stub']['can'] = array( 'manage_woocommerce' );
		$wpdb                           = $GLOBALS['wpdb'];
		$wpdb->add_row( self::TABLE, array( 'truncated_key' => 'before1' ) );
		$this->post( self::CREATE );
		$wpdb->add_row( self::TABLE, array( 'truncated_key' => 'after12' ) );
		$created = get_option( 'cryptum_bridge_api_key' );
		$this->assertSame( 42, $created['key_id'] );
		$GLOBALS['cryptum_stub']['redirects'] = array();
		$wpdb->calls                          = array();

		$this->assertNull( $this->post( self::REVOKE ) );

		$this->assertSame(
			array( array( 'delete', self::TABLE, array( 'key_id' => 42, 'truncated_key' => $created['truncated_key'] ), array( '%d', '%s' ) ) ),
			$wpdb->calls
		);
		$this->assertSame( array( 41, 43 ), array_keys( $wpdb->tables[ self::TABLE ] ) );
		$this->assertFalse( get_option( 'cryptum_bridge_api_key' ) );
		$this->assertSame( array( 'status' => 'revoked' ), $this->notice_left() );
	}

	public function test_revoke_leaves_alone_a_row_that_now_holds_another_key(): void {
		$wpdb = $GLOBALS['wpdb'];
		$wpdb->add_row( self::TABLE, array( 'truncated_key' => 'other12' ) ); // Id 41, not the remembered key.
		update_option( 'cryptum_bridge_api_key', array( 'key_id' => 41, 'truncated_key' => 'mine123', 'user_id' => 7 ) );

		$this->post( self::REVOKE );

		$this->assertSame( array( 41 ), array_keys( $wpdb->tables[ self::TABLE ] ) );
		$this->assertFalse( get_option( 'cryptum_bridge_api_key' ) );
		$this->assertSame( array( 'status' => 'gone' ), $this->notice_left() );
	}

	public function test_revoke_without_a_remembered_key_deletes_nothing(): void {
		$GLOBALS['wpdb']->add_row( self::TABLE, array( 'truncated_key' => 'other12' ) );

		$this->post( self::REVOKE );

		$this->assertSame( array(), $GLOBALS['wpdb']->calls );
		$this->assertSame( array( 'status' => 'none' ), $this->notice_left() );
	}

	public function test_a_failed_delete_keeps_the_key_remembered(): void {
		$remembered = array( 'key_id' => 41, 'truncated_key' => 'mine123', 'user_id' => 7 );
		update_option( 'cryptum_bridge_api_key', $remembered );
		$GLOBALS['wpdb']->fail = true;

		$this->post( self::REVOKE );

		$this->assertSame( $remembered, get_option( 'cryptum_bridge_api_key' ) );
		$this->assertSame( array( 'status' => 'revoke_failed' ), $this->notice_left() );
	}

	public function refusals(): array {
		$cases = array();
		foreach ( array( self::CREATE => self::REVOKE, self::REVOKE => self::CREATE ) as $action => $other ) {
			$cases += array(
				"$action: no capabilities"                        => array( $action, $other, false, 'valid', 'POST', 403 ),
				"$action: manage_options, not manage_woocommerce" => array( $action, $other, array( 'edit_posts', 'manage_options' ), 'valid', 'POST', 403 ),
				"$action: no nonce"                               => array( $action, $other, true, 'none', 'POST', 403 ),
				"$action: a wrong nonce"                          => array( $action, $other, true, '0123456789', 'POST', 403 ),
				"$action: a nonce in WooCommerce's field"         => array( $action, $other, true, 'in _wpnonce', 'POST', 403 ),
				"$action: the other button's nonce"               => array( $action, $other, true, 'other', 'POST', 403 ),
				"$action: a GET"                                  => array( $action, $other, true, 'valid', 'GET', 405 ),
			);
		}
		return $cases;
	}

	/** @dataProvider refusals */
	public function test_refuses_without_the_capability_the_nonce_or_a_post( string $action, string $other, $can, string $nonce, string $method, int $status ): void {
		$remembered = array( 'key_id' => 41, 'truncated_key' => 'mine123', 'user_id' => 7 );
		$GLOBALS['wpdb']->add_row( self::TABLE, array( 'truncated_key' => 'mine123' ) );
		if ( self::REVOKE === $action ) {
			update_option( 'cryptum_bridge_api_key', $remembered );
		}
		$options                        = $GLOBALS['cryptum_stub']['options'];
		$GLOBALS['cryptum_stub']['can'] = $can;
		if ( 'other' === $nonce ) {
			$nonce = wp_create_nonce( $other );
		}
		$field = 'cryptum_bridge_nonce';
		if ( 'in _wpnonce' === $nonce ) {
			list( $nonce, $field ) = array( 'valid', '_wpnonce' );
		}

		$died = $this->post( $action, 'none' === $nonce ? null : $nonce, $method, $field );

		$this->assertInstanceOf( \Cryptum_Stub_Died::class, $died );
		$this->assertSame( $status, $died->getCode() );
		$this->assertSame( array(), $GLOBALS['wpdb']->calls );
		$this->assertSame( array( 41 ), array_keys( $GLOBALS['wpdb']->tables[ self::TABLE ] ) );
		$this->assertSame( $options, $GLOBALS['cryptum_stub']['options'] );
		$this->assertSame( array(), $GLOBALS['cryptum_stub']['transients'] );
		$this->assertSame( array(), $GLOBALS['cryptum_stub']['redirects'] );
	}

	public function test_nobody_logged_out_reaches_the_handlers(): void {
		$this->connect();

		$this->assertFalse( has_action( 'admin_post_nopriv_' . self::CREATE ) );
		$this->assertFalse( has_action( 'admin_post_nopriv_' . self::REVOKE ) );
	}

	public function shells(): array {
		return array(
			'sh'   => array( 'sh' ),
			'bash' => array( 'bash' ),
		);
	}

	/** @dataProvider shells */
	public function test_the_credentials_command_writes_private_files_under_sh_and_bash( string $shell ): void {
		if ( ! is_executable( '/bin/' . $shell ) && ! is_executable( '/usr/bin/' . $shell ) ) {
			$this->markTestSkipped( "$shell is not installed" );
		}
		$base      = sys_get_temp_dir() . '/cryptum-bridge-' . bin2hex( random_bytes( 6 ) );
		$directory = $base . "/it's credentials"; // A quote and a space, to prove the quoting.
		$key       = 'ck_' . bin2hex( random_bytes( 20 ) );
		$secret    = 'cs_' . bin2hex( random_bytes( 20 ) );
		mkdir( $base );
		try {
			exec( $shell . ' -c ' . escapeshellarg( \Cryptum_Bridge_Connect::credentials_command( $key, $secret, $directory ) ) . ' 2>&1', $output, $status );

			$this->assertSame( 0, $status, implode( "\n", $output ) );
			$this->assertSame( $key, file_get_contents( $directory . '/woocommerce_consumer_key' ) );
			$this->assertSame( $secret, file_get_contents( $directory . '/woocommerce_consumer_secret' ) );
			clearstatcache();
			$this->assertSame( '0600', substr( sprintf( '%o', fileperms( $directory . '/woocommerce_consumer_key' ) ), -4 ) );
			$this->assertSame( '0600', substr( sprintf( '%o', fileperms( $directory . '/woocommerce_consumer_secret' ) ), -4 ) );
			$this->assertSame( '0700', substr( sprintf( '%o', fileperms( $directory ) ), -4 ) );
		} finally {
			exec( 'rm -rf ' . escapeshellarg( $base ) );
		}
	}

	public function toml_strings(): array {
		return array(
			'plain'            => array( 'https://shop.example.com', '"https://shop.example.com"' ),
			'quote, backslash' => array( 'a"b\\c', '"a\\"b\\\\c"' ),
			'control'          => array( "a\nb\x7f", '"a\\u000Ab\\u007F"' ),
		);
	}

	/** @dataProvider toml_strings */
	public function test_toml_strings_are_escaped( string $text, string $expected ): void {
		$this->assertSame( $expected, \Cryptum_Bridge_Connect::toml_string( $text ) );
	}

	public function test_shell_words_survive_single_quotes(): void {
		$this->assertSame( "'it'\\''s'", \Cryptum_Bridge_Connect::shell_quote( "it's" ) );
	}

	private function box( string $section = 'cryptum_bridge' ): string {
		$GLOBALS['current_section'] = $section;
		$this->connect();
		ob_start();
		do_action( 'woocommerce_after_settings_advanced' );
		return ob_get_clean();
	}

	public function test_the_section_offers_the_create_button_with_its_nonce(): void {
		$GLOBALS['cryptum_stub']['can'] = array( 'manage_woocommerce' );

		$html = $this->box();

		$this->assertStringContainsString( '<form method="post" action="https://shop.example.com/wp-admin/admin-post.php">', $html );
		$this->assertStringContainsString( '<input type="hidden" name="action" value="cryptum_bridge_create_key" />', $html );
		$this->assertStringContainsString( 'name="cryptum_bridge_nonce" value="' . wp_create_nonce( self::CREATE ) . '"', $html );
		$this->assertStringContainsString( 'Create a WooCommerce key for the bridge</button>', $html );
		$this->assertStringNotContainsString( self::REVOKE, $html );
	}

	public function test_with_a_key_the_section_offers_only_revoke(): void {
		update_option( 'cryptum_bridge_api_key', array( 'key_id' => 41, 'truncated_key' => '<b>1234', 'user_id' => 7 ) );

		$html = $this->box();

		$this->assertStringContainsString( '<input type="hidden" name="action" value="cryptum_bridge_revoke_key" />', $html );
		$this->assertStringContainsString( 'name="cryptum_bridge_nonce" value="' . wp_create_nonce( self::REVOKE ) . '"', $html );
		$this->assertStringContainsString( 'with id 41, ending in <code>…&lt;b&gt;1234</code>', $html );
		$this->assertStringContainsString( 'onclick="return window.confirm( &#039;Revoke the bridge\\&#039;s WooCommerce key?', $html );
		$this->assertStringNotContainsString( self::CREATE, $html );
	}

	public function hidden_box(): array {
		return array(
			'another section'    => array( 'keys', true ),
			'the page setup tab' => array( '', true ),
			'not a manager'      => array( 'cryptum_bridge', array( 'edit_posts' ) ),
		);
	}

	/** @dataProvider hidden_box */
	public function test_the_box_stays_off_other_sections_and_from_other_users( string $section, $can ): void {
		$GLOBALS['cryptum_stub']['can'] = $can;

		$this->assertSame( '', $this->box( $section ) );
	}
}
