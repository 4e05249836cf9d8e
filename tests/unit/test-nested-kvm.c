#include "nested-events.h"
int main(void) { return 0; }
