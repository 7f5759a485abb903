/* The end of every Check suite's main: run the suite, report as Check does,
 * and exit with the status ctest reads (0: every test passed). */
#ifndef MFX_TESTS_CHECK_MAIN_H
#define MFX_TESTS_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

static inline int check_run_suite(Suite *s) {
  SRunner *runner = srunner_create(s);
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
