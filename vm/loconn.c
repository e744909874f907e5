/* vm/loconn.c: one TCP connection on 127.0.0.1 and one on [::1] (ports
 * 4242 and 4243), each accepted and closed; for the arm64 smoke guest
 * (busybox nc cannot do it). Static: aarch64-linux-gnu-gcc -static. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int one(int family, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    int l = socket(family, SOCK_STREAM, 0), on = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (l < 0 || bind(l, (struct sockaddr *)&ss, len) || listen(l, 4)) { perror("listen"); return 1; }
    int c = socket(family, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&ss, len)) { perror("connect"); return 1; }
    int a = accept(l, NULL, NULL);
    if (a < 0) { perror("accept"); return 1; }
    close(c);
    close(a);
    close(l);
    return 0;
}

int main(void)
{
    int rc = one(AF_INET, 4242) | one(AF_INET6, 4243);
    printf("loconn rc=%d\n", rc);
    return rc;
}
