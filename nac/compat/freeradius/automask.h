/* Empty on purpose: libfreeradius-dev does not ship automask.h, and the
 * protocol library (libradius.h) needs nothing from it. See nac/README.md. */
