/* sddl.c - prints, in hex, the self-relative security descriptor Windows
 * (here Wine's advapi32) makes of an SDDL string: the outside reference the
 * Wine run compares the driver's own descriptor with.
 *
 *   sddl.exe "D:P(A;;FA;;;SY)(A;;FA;;;BA)"
 */
#include <windows.h>
#include <sddl.h>
#include <stdio.h>

int main(int argc, char **argv) {
    PSECURITY_DESCRIPTOR sd = NULL;
    ULONG len = 0;
    if (argc != 2) {
        fprintf(stderr, "usage: sddl.exe SDDL\n");
        return 2;
    }
    if (!ConvertStringSecurityDescriptorToSecurityDescriptorA(argv[1], SDDL_REVISION_1, &sd, &len)) {
        fprintf(stderr, "sddl: %s: error %lu\n", argv[1], GetLastError());
        return 1;
    }
    for (ULONG i = 0; i < len; i++)
        printf("%02x", ((const unsigned char *)sd)[i]);
    printf("\n");
    LocalFree(sd);
    return 0;
}
