/*
 * serve_assets.h - the dashboard's static files as compiled into tend. The
 * table is generated at build time by supervisor/ui/embed.py from the files
 * under supervisor/ui/, so the server never reads files to serve its UI.
 */
#ifndef SERVE_ASSETS_H
#define SERVE_ASSETS_H

#include <stddef.h>

typedef struct srv__asset {
	const char *path;  /* "/app.js" */
	const char *ctype; /* its Content-Type */
	const unsigned char *data;
	size_t len;
} srv__asset;

/* Generated: every file, and how many. */
extern const srv__asset srv__assets[];
extern const size_t srv__nassets;

#endif
