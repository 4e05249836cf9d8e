#include "trace/trace-target_i386_nested_kvm_mirror.h"
