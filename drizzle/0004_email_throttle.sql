CREATE TABLE "email_throttle" (
	"user_id" uuid NOT NULL,
	"purpose" varchar(32) NOT NULL,
	"email_key" varchar(254) NOT NULL,
	"last_sent_at" timestamp (3) with time zone NOT NULL,
	CONSTRAINT "email_throttle_user_id_purpose_email_key_pk" PRIMARY KEY("user_id","purpose","email_key")
);
--> statement-breakpoint
ALTER TABLE "email_throttle" ADD CONSTRAINT "email_throttle_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;