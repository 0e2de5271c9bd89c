-- A restocked return line may come back damaged: its units go on hand as damaged stock, not sellable.
ALTER TABLE return_lines ADD COLUMN damaged boolean NOT NULL DEFAULT false;
ALTER TABLE return_lines ADD CONSTRAINT return_lines_damaged_restocked CHECK (restock OR NOT damaged);
