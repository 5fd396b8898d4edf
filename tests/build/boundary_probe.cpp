// Compiled by the build.module_boundaries test with the include path of gio_slot alone:
// `slot` links no other module, so a state header must not be found from here.
#include "slot/slot.hpp"
#ifdef GIO_PROBE_STRAY_INCLUDE
#include "state/state_store.hpp"
#endif
