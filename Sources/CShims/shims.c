// Intentionally empty: every accessor is static inline in include/CShims.h.
#include "CShims.h"
