<?php
/**
 * Base test case: a fresh stub state, $_SERVER, $_REQUEST, $_POST and current section for every test.
 *
 * @package Cryptum_Bridge
 */

namespace Cryptum_Bridge\Tests;

abstract class TestCase extends \PHPUnit\Framework\TestCase {

	/** @var array */
	private $server;

	/** @var array */
	private $request;

	/** @var array */
	private $post;

	protected function setUp(): void {
		parent::setUp();
		cryptum_stub_reset();
		$this->server  = $_SERVER;
		$this->request = $_REQUEST;
		$this->post    = $_POST;
	}

	protected function tearDown(): void {
		$_SERVER  = $this->server;
		$_REQUEST = $this->request;
		$_POST    = $this->post;
		unset( $GLOBALS['current_section'] );
		parent::tearDown();
	}

	/** The plugin's settings section, as esc_url() prints it. */
	protected static function settings_href(): string {
		return 'https://shop.example.com/wp-admin/admin.php?page=wc-settings&#038;tab=advanced&#038;section=cryptum_bridge';
	}

	/**
	 * Settings whose wp-config.php constants are the given ones.
	 *
	 * @param array<string, mixed> $constants Constant name => value.
	 */
	protected function settings( array $constants = array() ): \Cryptum_Bridge_Settings {
		return new \Cryptum_Bridge_Settings(
			static function ( $name ) use ( $constants ) {
				return array_key_exists( $name, $constants ) ? $constants[ $name ] : null;
			}
		);
	}
}
