/* vm/fortify-shim.c: __fprintf_chk for the arm64 test binaries.
 * Debian's libunwind.a (LLVM 14) is built with _FORTIFY_SOURCE against
 * glibc and calls __fprintf_chk in its error paths; musl has no _chk
 * functions. The tracer (panic=abort) never links those paths; the test
 * binaries unwind, so they link them. Same behaviour, without the check. */
#include <stdarg.h>
#include <stdio.h>

int __fprintf_chk(FILE *f, int flag, const char *fmt, ...)
{
    va_list ap;
    int n;
    (void)flag;
    va_start(ap, fmt);
    n = vfprintf(f, fmt, ap);
    va_end(ap);
    return n;
}
