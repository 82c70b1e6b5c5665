/* Unit tests: which settings file asrd serve/diagnose read (src/cli/config_path.c): --config,
 * then $ASRD_CONFIG (not when empty), then the installed default when it exists, else none; and
 * the built-in default is /etc/asrd/asrd.conf (the package's conffile). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/cli.h"

static char g_dflt[64];

static int setup(void **state) {
    (void)state;
    snprintf(g_dflt, sizeof g_dflt, "/tmp/asrd-cfgpath-XXXXXX");
    int fd = mkstemp(g_dflt);
    assert_true(fd >= 0);
    close(fd);
    unsetenv("ASRD_CONFIG");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(g_dflt);
    unsetenv("ASRD_CONFIG");
    return 0;
}

static void test_builtin_default(void **state) {
    (void)state;
    assert_string_equal(asr_cli_default_config(), "/etc/asrd/asrd.conf");
}

static void test_flag_wins(void **state) {
    (void)state;
    char *argv[] = {"serve", "--port", "0", "--config", "/a.conf", NULL};
    setenv("ASRD_CONFIG", "/env.conf", 1);
    assert_string_equal(asr__cli_config_path_in(5, argv, g_dflt), "/a.conf");
    char *argv2[] = {"serve", "--config=/b.conf", NULL};
    assert_string_equal(asr__cli_config_path_in(2, argv2, g_dflt), "/b.conf");
}

static void test_env_over_default(void **state) {
    (void)state;
    char *argv[] = {"serve", NULL};
    setenv("ASRD_CONFIG", "/env.conf", 1);
    assert_string_equal(asr__cli_config_path_in(1, argv, g_dflt), "/env.conf");
    setenv("ASRD_CONFIG", "", 1); /* empty: as if unset */
    assert_string_equal(asr__cli_config_path_in(1, argv, g_dflt), g_dflt);
}

static void test_default_only_when_present(void **state) {
    (void)state;
    char *argv[] = {"serve", NULL};
    assert_string_equal(asr__cli_config_path_in(1, argv, g_dflt), g_dflt);
    unlink(g_dflt);
    assert_null(asr__cli_config_path_in(1, argv, g_dflt));
    assert_null(asr__cli_config_path_in(1, argv, NULL));
    assert_null(asr__cli_config_path_in(1, argv, ""));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_builtin_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flag_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_over_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_only_when_present, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
