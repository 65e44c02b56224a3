<?php
/**
 * Base test case: a fresh stub state and $_SERVER for every test.
 *
 * @package Cryptum_Bridge
 */

namespace Cryptum_Bridge\Tests;

abstract class TestCase extends \PHPUnit\Framework\TestCase {

	/** @var array */
	private $server;

	protected function setUp(): void {
		parent::setUp();
		cryptum_stub_reset();
		$this->server = $_SERVER;
	}

	protected function tearDown(): void {
		$_SERVER = $this->server;
		parent::tearDown();
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
