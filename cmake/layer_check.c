/* The program the layer checks link (CMakeLists.txt, asr_layer): it calls nothing. Linked with a
 * layer's whole archive and only the layers that layer declares, it builds only if no object of
 * the layer calls into a layer above it. */
int main(void) { return 0; }
