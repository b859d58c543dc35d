CREATE TABLE `fed_move_jtis` (
	`jti` text PRIMARY KEY NOT NULL,
	`expires_at` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `fed_move_jtis_expires` ON `fed_move_jtis` (`expires_at`);--> statement-breakpoint
CREATE TABLE `fed_moves_in` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`peer_id` integer NOT NULL,
	`source_url` text NOT NULL,
	`move_id` text NOT NULL,
	`cth` text NOT NULL,
	`state` text DEFAULT 'pulling' NOT NULL,
	`manifest_jws` text NOT NULL,
	`parts` text NOT NULL,
	`last_error` text DEFAULT '' NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`updated_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `fed_moves_in_cth_unique` ON `fed_moves_in` (`cth`);--> statement-breakpoint
CREATE INDEX `fed_moves_in_source` ON `fed_moves_in` (`source_url`,`move_id`);--> statement-breakpoint
CREATE TABLE `fed_moves_out` (
	`id` text PRIMARY KEY NOT NULL,
	`user_id` integer NOT NULL,
	`peer_id` integer NOT NULL,
	`peer_url` text NOT NULL,
	`code_hash` text NOT NULL,
	`expires_at` text NOT NULL,
	`state` text DEFAULT 'open' NOT NULL,
	`started_by` text NOT NULL,
	`consent` text DEFAULT '' NOT NULL,
	`parts` text NOT NULL,
	`manifest_jws` text NOT NULL,
	`receipt_jws` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`updated_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `fed_moves_out_code_hash_unique` ON `fed_moves_out` (`code_hash`);