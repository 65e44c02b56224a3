<?php
/**
 * Thrown by the tests' "terminate": like exit, nothing after it runs.
 *
 * @package Cryptum_Bridge
 */

namespace Cryptum_Bridge\Tests;

final class Terminated extends \RuntimeException {
}
